//! apinetlet: translates `networking.ironcore.dev` objects into `core.apinet.ironcore.dev` objects.
