// Uploads a file to S3 through Lifeboat's S3Store (streamed multipart upload, parts in
// parallel) and downloads it again (ranged reads ahead of the caller), checking the SHA-256 of
// what comes back. Prints one JSON line with the timings. Driven by Benchmarks/s3-transfer.sh.
//
//   s3-transfer-bench ENDPOINT BUCKET KEY FILE
//
// Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. For exploring:
// BENCH_CONCURRENCY, BENCH_READ_AHEAD, BENCH_PART_MIB (the store's settings), BENCH_UPLOAD_ONLY,
// BENCH_DEBUG.
import Crypto
import Foundation
import LifeboatCore
import LifeboatHTTP
import LifeboatIO
import LifeboatS3
import Logging

ProcessMemory.configure()  // as the lifeboat executable does

/// User + system CPU seconds of the whole process so far (every thread).
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

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

// BENCH_DEBUG=1 logs every request (action, duration, bytes) on standard error.
var logger = Logger(label: "bench")
if environment["BENCH_DEBUG"] != nil { logger.logLevel = .debug }

do {
    let client = try S3Client(
        configuration: .init(endpoint: endpoint, region: environment["AWS_DEFAULT_REGION"] ?? "us-east-1", bucket: bucket,
                             pathStyle: true, credentials: AWSCredentials(accessKeyID: id, secretAccessKey: secret),
                             checksum: S3Checksum(rawValue: environment["BENCH_CHECKSUM"] ?? "") ?? .crc32c),
        http: try HTTPClient(environment: environment), logger: logger)
    // The defaults of an S3 repository, unless the environment says otherwise (for exploring).
    let concurrency = Int(environment["BENCH_CONCURRENCY"] ?? "") ?? S3RepositoryConfig.defaultConcurrency
    let readAhead = Int(environment["BENCH_READ_AHEAD"] ?? "") ?? 4
    let partSize = (Int(environment["BENCH_PART_MIB"] ?? "") ?? 8) << 20
    let store = S3Store(client: client, prefix: "", partSize: partSize, concurrency: concurrency, readAhead: readAhead,
                        logger: logger)
    // The file's digest, taken before the clock starts: the upload itself hashes only what
    // signing needs, as the aws CLI does.
    guard let hashInput = FileHandle(forReadingAtPath: file), let input = FileHandle(forReadingAtPath: file) else {
        fail("cannot open \(file)")
    }
    var uploadHash = SHA256()
    while let chunk = try hashInput.read(upToCount: 1 << 20), !chunk.isEmpty { uploadHash.update(data: chunk) }

    let uploadCPUStart = cpuSeconds()
    let uploadStart = Date()
    let writer = try store.openWriter(key: key)
    var uploaded = 0
    while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty {
        try chunk.withUnsafeBytes { try writer.write($0) }
        uploaded += chunk.count
    }
    try writer.commit()
    let uploadSeconds = Date().timeIntervalSince(uploadStart)
    let uploadCPU = cpuSeconds() - uploadCPUStart

    if environment["BENCH_UPLOAD_ONLY"] != nil {
        print("{\"bytes\": \(uploaded), \"upload_seconds\": \(uploadSeconds), \"upload_cpu_seconds\": \(uploadCPU)}")
        exit(0)
    }
    var downloadHash = SHA256()
    let downloadCPUStart = cpuSeconds()
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
    let downloadCPU = cpuSeconds() - downloadCPUStart
    let same = Data(uploadHash.finalize()) == Data(downloadHash.finalize())
    guard same, downloaded == uploaded else { fail("the object read back differs from the file (\(downloaded) of \(uploaded) bytes)") }
    print("{\"bytes\": \(uploaded), \"upload_seconds\": \(uploadSeconds), \"download_seconds\": \(downloadSeconds), "
          + "\"upload_cpu_seconds\": \(uploadCPU), \"download_cpu_seconds\": \(downloadCPU)}")
} catch {
    fail("\(error)")
}
