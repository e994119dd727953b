// libFuzzer target: Redis replies through `RESP.decode`, value after value. Built by run.sh.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRESP(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: count))
    var offset = 0
    while offset < bytes.count, let decoded = try? RESP.decode(Array(bytes[offset...])) {
        _ = decoded.value.description
        offset += decoded.count
    }
    return 0
}
