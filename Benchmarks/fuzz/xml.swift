// libFuzzer target: S3's XML documents through `XMLNode.parse`. Built by run.sh.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzXML(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: count))
    if let root = try? XMLNode.parse(bytes) {
        _ = root.all("Contents").map { $0["Key"] }
    }
    return 0
}
