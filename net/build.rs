//! Generates the gRPC code from our own `.proto` files of etcd's v3 API. protox (a pure-Rust
//! protobuf compiler) parses them, so the build needs no system `protoc`; madsim-tonic-build
//! generates both tonic's code and madsim's simulated version (`OUT_DIR/sim`, used under
//! `--cfg madsim`) from that descriptor set.

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/mvccpb/kv.proto",
        "proto/authpb/auth.proto",
        "proto/etcdserverpb/rpc.proto",
        "proto/v3lockpb/v3lock.proto",
        "proto/v3electionpb/v3election.proto",
        "proto/steadpeer/peer.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_set = out_dir.join("descriptors.bin");
    std::fs::write(&descriptor_set, descriptors.encode_to_vec())?;
    madsim_tonic_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(&descriptor_set)
        .skip_protoc_run()
        .emit_rerun_if_changed(false)
        .compile_protos(&files, &["proto"])?;
    Ok(())
}
