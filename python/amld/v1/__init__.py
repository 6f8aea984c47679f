"""The amld.v1 API's generated protobuf and gRPC stubs (proto/amld/v1/*.proto)."""
