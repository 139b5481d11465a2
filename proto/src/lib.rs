//! Generated gRPC types for Cairn: the public API (`cairn.v1`) and the node-to-node Raft
//! transport (`cairn.peer.v1`). Generated at build time by protox + tonic-prost-build, so no
//! system `protoc` is needed.

/// Modules mirror the proto packages (generated code refers across them with `super::`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod cairn {
    pub mod v1 {
        tonic::include_proto!("cairn.v1");
    }
    pub mod peer {
        pub mod v1 {
            tonic::include_proto!("cairn.peer.v1");
        }
    }
}

/// Public API: produce, fetch, offsets, cluster description, structured errors.
pub use cairn::v1;

/// Node-to-node transport for Raft messages.
pub use cairn::peer::v1 as peer;

/// Encoded `FileDescriptorSet` of every Cairn .proto file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cairn_descriptor.bin"));

pub mod codec;
pub mod hash;
