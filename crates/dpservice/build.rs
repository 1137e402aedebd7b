//! Compiles `proto/dpdk.proto` with the pure-Rust `protox` compiler (no system `protoc`) into
//! prost messages plus tonic server and client code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/dpdk.proto");
    let fds = protox::compile(["proto/dpdk.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
