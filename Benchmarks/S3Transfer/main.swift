// Uploads a file to S3 through Lifeboat's S3Store (streamed multipart upload, parts in
// parallel) and downloads it again (ranged reads ahead of the caller), checking the SHA-256 of
// what comes back. Prints one JSON line with the timings. Driven by Benchmarks/s3-transfer.sh.
//
//   s3-transfer-bench ENDPOINT BUCKET KEY FILE
//
// Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
import Crypto
import Foundation
import LifeboatCore
import LifeboatHTTP
import LifeboatS3
import Logging

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("s3-transfer-bench: \(message)\n".utf8))
    exit(1)
}

let arguments = CommandLine.arguments
guard arguments.count == 5 else { fail("usage: s3-transfer-bench ENDPOINT BUCKET KEY FILE") }
let (endpoint, bucket, key, file) = (arguments[1], arguments[2], arguments[3], arguments[4])
let environment = ProcessInfo.processInfo.environment
guard let id = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"] else {
    fail("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
}

do {
    let client = try S3Client(
        configuration: .init(endpoint: endpoint, region: environment["AWS_DEFAULT_REGION"] ?? "us-east-1", bucket: bucket,
                             pathStyle: true, credentials: AWSCredentials(accessKeyID: id, secretAccessKey: secret)),
        http: try HTTPClient(environment: environment), logger: Logger(label: "bench"))
    // The defaults of an S3 repository, unless the environment says otherwise (for exploring).
    let concurrency = Int(environment["BENCH_CONCURRENCY"] ?? "") ?? S3RepositoryConfig.defaultConcurrency
    let readAhead = Int(environment["BENCH_READ_AHEAD"] ?? "") ?? 4
    let store = S3Store(client: client, prefix: "", concurrency: concurrency, readAhead: readAhead, logger: Logger(label: "bench"))
    // The file's digest, taken before the clock starts: the upload itself hashes only what
    // signing needs, as the aws CLI does.
    guard let hashInput = FileHandle(forReadingAtPath: file), let input = FileHandle(forReadingAtPath: file) else {
        fail("cannot open \(file)")
    }
    var uploadHash = SHA256()
    while let chunk = try hashInput.read(upToCount: 1 << 20), !chunk.isEmpty { uploadHash.update(data: chunk) }

    let uploadStart = Date()
    let writer = try store.openWriter(key: key)
    var uploaded = 0
    while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty {
        try chunk.withUnsafeBytes { try writer.write($0) }
        uploaded += chunk.count
    }
    try writer.commit()
    let uploadSeconds = Date().timeIntervalSince(uploadStart)

    if environment["BENCH_UPLOAD_ONLY"] != nil {
        print("{\"bytes\": \(uploaded), \"upload_seconds\": \(uploadSeconds)}")
        exit(0)
    }
    var downloadHash = SHA256()
    let downloadStart = Date()
    let reader = try store.openReader(key: key)
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    var downloaded = 0
    while true {
        let n = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
        if n == 0 { break }
        buffer.withUnsafeBytes { downloadHash.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        downloaded += n
    }
    reader.close()
    let downloadSeconds = Date().timeIntervalSince(downloadStart)
    let same = Data(uploadHash.finalize()) == Data(downloadHash.finalize())
    guard same, downloaded == uploaded else { fail("the object read back differs from the file (\(downloaded) of \(uploaded) bytes)") }
    print("{\"bytes\": \(uploaded), \"upload_seconds\": \(uploadSeconds), \"download_seconds\": \(downloadSeconds)}")
} catch {
    fail("\(error)")
}
