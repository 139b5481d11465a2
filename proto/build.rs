//! Compiles the .proto files with protox (pure Rust), so no system `protoc` is needed.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/cairn/v1/broker.proto",
        "proto/cairn/v1/errors.proto",
        "proto/cairn/v1/admin.proto",
        "proto/cairn/v1/groups.proto",
        "proto/cairn/peer/v1/raft.proto",
        "proto/cairn/peer/v1/node.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // The descriptor set is served by gRPC reflection.
    std::fs::write(out.join("cairn_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    // Decode failures are the sender's error (INVALID_ARGUMENT), not tonic's INTERNAL.
    tonic_prost_build::configure().bytes(".").codec_path("crate::codec::CairnCodec").compile_fds(fds)?;
    Ok(())
}
