//! `ironnet token create`: mints a signed bearer token with the key in the data directory, for a
//! node agent (`--node`) or any user, optionally as a ready kubeconfig.

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use clap::{Args, Subcommand};
use ironnet_apiserver::auth::identities;
use ironnet_apiserver::auth::signed::{self, TokenClaims, TokenSigner};
use ironnet_apiserver::kubeconfig;

/// `ironnet token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new signed token (or write a kubeconfig with it).
    Create(CreateArgs),
}

/// Arguments of `ironnet token create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The data directory of the API server (its signing key is `DIR/pki/token-signing.key`).
    #[arg(long, default_value = "ironnet-data")]
    data_dir: PathBuf,
    /// A node agent's token: user `system:node:NODE` in group `system:nodes`.
    #[arg(long, conflicts_with_all = ["user", "group"], required_unless_present = "user")]
    node: Option<String>,
    /// The user name.
    #[arg(long)]
    user: Option<String>,
    /// A group of the user (repeatable).
    #[arg(long)]
    group: Vec<String>,
    /// How long the token is valid: a number and s, m, h or d.
    #[arg(long, default_value = "24h")]
    ttl: String,
    /// Write a kubeconfig with the token, the server URL and the CA of `DIR/kubeconfig` to this
    /// file instead of printing the token.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The server URL for --kubeconfig (default: the one in `DIR/kubeconfig`).
    #[arg(long, requires = "kubeconfig")]
    server: Option<String>,
}

/// Runs `ironnet token …`.
pub fn run(command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Create(args) = command;
    let ttl = signed::parse_ttl(&args.ttl).map_err(|e| anyhow::anyhow!("--ttl {e}"))?;
    let (user, groups) = match (&args.node, &args.user) {
        (Some(node), _) => {
            if node.is_empty() || node.contains(['/', ':']) {
                anyhow::bail!("--node {node:?} is not a node name");
            }
            (
                identities::node_user(node),
                vec![identities::NODES_GROUP.to_owned()],
            )
        }
        (None, Some(user)) if !user.is_empty() => (user.clone(), args.group.clone()),
        _ => anyhow::bail!("give --node NODE or a non-empty --user USER"),
    };
    let key = crate::serve::token_key_path(&args.data_dir);
    if !key.exists() {
        anyhow::bail!(
            "{} does not exist: start `ironnet up` or `ironnet apiserver` with --data-dir {} first",
            key.display(),
            args.data_dir.display()
        );
    }
    let signer = TokenSigner::load_or_create(&key)?;
    let token = signer.sign(&TokenClaims::new(&user, &groups, ttl));
    let Some(path) = args.kubeconfig else {
        println!("{token}");
        return Ok(());
    };
    let admin_path = args.data_dir.join("kubeconfig");
    let admin = kube::config::Kubeconfig::read_from(&admin_path)
        .with_context(|| format!("reading {}", admin_path.display()))?;
    let cluster = admin
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .with_context(|| format!("{} names no cluster", admin_path.display()))?;
    let server = match args.server {
        Some(server) => server,
        None => cluster
            .server
            .clone()
            .with_context(|| format!("{} names no server", admin_path.display()))?,
    };
    let ca_pem = cluster
        .certificate_authority_data
        .as_deref()
        .map(|b64| base64::engine::general_purpose::STANDARD.decode(b64))
        .transpose()
        .context("the admin kubeconfig's certificate-authority-data")?
        .map(String::from_utf8)
        .transpose()
        .context("the admin kubeconfig's certificate-authority-data")?;
    kubeconfig::Spec {
        server,
        ca_pem,
        user: user.replace(':', "-"),
        credentials: kubeconfig::Credentials::Token(token),
    }
    .write(&path)?;
    println!("wrote {} for {user}", path.display());
    Ok(())
}
