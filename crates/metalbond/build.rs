//! Compiles `proto/metalbond.proto` with protox (pure Rust, no system `protoc`) and prost-build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/metalbond.proto");
    let fds = protox::compile(["metalbond.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
