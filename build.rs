//! Generates the transport header's protobuf types (src/tls) from
//! `proto/transport_header.proto`. protox parses the file in Rust, so a
//! fresh machine needs nothing but cargo: no `protoc` binary.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=proto/transport_header.proto");
    let descriptors = protox::compile(["transport_header.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
