import Foundation
import LifeboatArchive
import LifeboatCore
import Synchronization
import Testing

/// An object being written into memory. Can be told to fail once it holds `failAfter` bytes.
final class MemoryWriter: ObjectWriter {
    let key: String
    var bytes: [UInt8] = []
    var failAfter: Int?
    var writesAfterEnd = 0
    private(set) var ended = false

    init(key: String = "backups/1/data/0001.tar.zst", failAfter: Int? = nil) {
        self.key = key
        self.failAfter = failAfter
    }

    func write(_ buffer: UnsafeRawBufferPointer) throws {
        if ended { writesAfterEnd += 1 }
        if let failAfter, bytes.count + buffer.count > failAfter {
            throw LifeboatError(.storage, "object '\(key)': the disk is full (test)")
        }
        bytes.append(contentsOf: buffer)
    }

    func commit() throws { ended = true }
    func abort() { ended = true }
}

/// Reads bytes from memory, `readSize` bytes at most per call (to exercise partial reads).
/// Throws a `.storage` error once `failAfter` bytes were read.
final class MemoryReader: ObjectReader {
    let key: String
    let bytes: [UInt8]
    let readSize: Int
    let failAfter: Int?
    private var offset = 0

    init(_ bytes: [UInt8], key: String = "backups/1/data/0001.tar.zst", readSize: Int = 50_000, failAfter: Int? = nil) {
        self.bytes = bytes
        self.key = key
        self.readSize = readSize
        self.failAfter = failAfter
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if let failAfter, offset >= failAfter {
            throw LifeboatError(.storage, "object '\(key)': connection reset (test)")
        }
        let n = min(buffer.count, readSize, bytes.count - offset, (failAfter ?? Int.max) - offset)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<(offset + n)]))
        }
        offset += n
        return n
    }

    func close() {}
}

/// A stream (like the standard output of `pg_dump`) over fixed bytes, handing out at most
/// `piece` bytes per read; throws `StreamFailure` once `failAt` bytes were handed out.
final class ByteStream: Sendable {
    let bytes: [UInt8]
    let piece: Int
    let failAt: Int?
    private let offset = Mutex(0)

    init(_ bytes: [UInt8], piece: Int = 4096, failAt: Int? = nil) {
        self.bytes = bytes
        self.piece = piece
        self.failAt = failAt
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try offset.withLock { offset in
            if let failAt, offset >= failAt { throw StreamFailure() }
            var n = min(buffer.count, piece, bytes.count - offset)
            if let failAt { n = min(n, failAt - offset) }
            guard n > 0 else { return 0 }
            bytes.withUnsafeBytes { source in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<(offset + n)]))
            }
            offset += n
            return n
        }
    }
}

struct StreamFailure: Error, Equatable {}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
func pseudoRandomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = (seed &+ 1) &* 0x9E37_79B9_7F4A_7C15 | 1
    var result = [UInt8]()
    result.reserveCapacity(count)
    for _ in 0..<count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        result.append(UInt8(truncatingIfNeeded: state))
    }
    return result
}

/// Adds a file held in memory.
func addMemoryFile(_ writer: ArtifactWriter, path: String, _ contents: [UInt8], mode: UInt32 = 0o644,
                   modificationTime: Int64 = 1_700_000_000) throws {
    var offset = 0
    try writer.addFile(path: EntryPath(path), size: Int64(contents.count), mode: mode,
                       modificationTime: modificationTime) { buffer in
        let n = min(buffer.count, contents.count - offset)
        contents.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<(offset + n)]))
        }
        offset += n
        return n
    }
}

/// A finished artifact: its stored bytes and its record.
struct BuiltArtifact {
    var bytes: [UInt8]
    var record: ArtifactRecord

    func reader(readSize: Int = 50_000, failAfter: Int? = nil) -> MemoryReader {
        MemoryReader(bytes, key: record.path, readSize: readSize, failAfter: failAfter)
    }
}

/// Writes an artifact with `build` and returns its bytes and record.
func buildArtifact(
    compression: Compression, path: String? = nil, role: String = "files",
    _ build: (ArtifactWriter) throws -> Void
) throws -> BuiltArtifact {
    let key = path ?? "data/0001\(compression.artifactSuffix)"
    let sink = MemoryWriter(key: key)
    let writer = try ArtifactWriter(sink: sink, compression: compression)
    try build(writer)
    let result = try writer.finish()
    try sink.commit()
    #expect(result.size == Int64(sink.bytes.count))
    let record = ArtifactRecord(
        path: key, role: ArtifactRole(role), size: result.size, sha256: try #require(result.sha256), compression: compression,
        entries: result.entries)
    return BuiltArtifact(bytes: sink.bytes, record: record)
}

/// A fresh directory under the temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("lifeboat-archive-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    func remove() {
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            Issue.record("unable to remove \(path): \(error)")
        }
    }

    func sub(_ name: String) -> String { path + "/" + name }
}

/// What a tree holds, by relative path: kind, permission bits, contents or link target, and
/// modification time (seconds).
struct TreeItem: Equatable, CustomStringConvertible {
    var kind: String
    var mode: Int
    var contents: [UInt8]
    var linkTarget: String?
    var modificationTime: Int

    var description: String {
        "\(kind) mode \(String(mode, radix: 8)) \(contents.count) bytes link \(linkTarget ?? "-") mtime \(modificationTime)"
    }
}

func snapshot(_ root: String) throws -> [String: TreeItem] {
    var result: [String: TreeItem] = [:]
    let manager = FileManager.default
    func walk(_ relative: String) throws {
        let directory = relative.isEmpty ? root : root + "/" + relative
        for name in try manager.contentsOfDirectory(atPath: directory) {
            let path = directory + "/" + name
            let key = relative.isEmpty ? name : relative + "/" + name
            let attributes = try manager.attributesOfItem(atPath: path)
            let type = attributes[.type] as? FileAttributeType
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
            let time = Int((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1)
            switch type {
            case .typeDirectory?:
                result[key] = TreeItem(kind: "directory", mode: mode, contents: [], modificationTime: time)
                try walk(key)
            case .typeSymbolicLink?:
                result[key] = TreeItem(kind: "symlink", mode: 0, contents: [],
                                       linkTarget: try manager.destinationOfSymbolicLink(atPath: path),
                                       modificationTime: 0)
            case .typeRegular?:
                let data = try Data(contentsOf: URL(fileURLWithPath: path))
                result[key] = TreeItem(kind: "file", mode: mode, contents: [UInt8](data), modificationTime: time)
            default:
                result[key] = TreeItem(kind: "other", mode: mode, contents: [], modificationTime: time)
            }
        }
    }
    try walk("")
    return result
}

/// Index of the first occurrence of `pattern` in `bytes`.
func firstIndex(of pattern: [UInt8], in bytes: [UInt8]) -> Int? {
    guard !pattern.isEmpty, bytes.count >= pattern.count else { return nil }
    for start in 0...(bytes.count - pattern.count) where bytes[start] == pattern[0] {
        if Array(bytes[start..<(start + pattern.count)]) == pattern { return start }
    }
    return nil
}

/// A failure of a test helper, with what went wrong.
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A path given as bytes, NUL-terminated for C functions.
func cPath(_ bytes: [UInt8]) -> [CChar] { bytes.map { CChar(bitPattern: $0) } + [0] }

/// `lstat` of a path given as bytes.
func fileStatus(bytes: [UInt8]) throws -> stat {
    var status = stat()
    guard lstat(cPath(bytes), &status) == 0 else {
        throw TestFailure("lstat '\(String(decoding: bytes, as: UTF8.self))': \(String(cString: strerror(errno)))")
    }
    return status
}

/// `lstat` of a path.
func fileStatus(_ path: String) throws -> stat { try fileStatus(bytes: Array(path.utf8)) }

/// The names in a directory as bytes (without `.` and `..`), sorted.
func directoryNameBytes(_ path: String) throws -> [[UInt8]] {
    guard let directory = opendir(path) else { throw TestFailure("opendir '\(path)': \(String(cString: strerror(errno)))") }
    defer { closedir(directory) }
    var names: [[UInt8]] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: &entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
        if name != Array(".".utf8), name != Array("..".utf8) { names.append(name) }
    }
    return names.sorted { $0.lexicographicallyPrecedes($1) }
}

/// The contents of a file given by its path's bytes.
func fileContents(bytes: [UInt8]) throws -> [UInt8] {
    let fd = open(cPath(bytes), O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw TestFailure("open '\(String(decoding: bytes, as: UTF8.self))': \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = read(fd, &buffer, buffer.count)
        guard n >= 0 else { throw TestFailure("read: \(String(cString: strerror(errno)))") }
        if n == 0 { return result }
        result.append(contentsOf: buffer[0..<n])
    }
}

/// Creates a file whose path is given as bytes, holding `contents`.
func createFile(bytes: [UInt8], _ contents: [UInt8], mode: mode_t = 0o644) throws {
    let fd = open(cPath(bytes), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard fd >= 0 else { throw TestFailure("create '\(String(decoding: bytes, as: UTF8.self))': \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    guard write(fd, contents, contents.count) == contents.count else { throw TestFailure("write: \(String(cString: strerror(errno)))") }
}

/// Sets the modification time of a path (not following a symbolic link).
func setModificationTime(_ path: String, _ seconds: Int) throws {
    var times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
    guard utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
        throw TestFailure("utimensat '\(path)': \(String(cString: strerror(errno)))")
    }
}

/// Runs a program to its end; returns its exit status and outputs (which must be small).
func runProgram(_ executable: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let out = output.fileHandleForReading.readDataToEndOfFile()
    let err = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}

/// The SHA-256 of a file as `sha256sum` computes it.
func sha256sum(_ path: String) throws -> String {
    let result = try runProgram("/usr/bin/sha256sum", [path])
    guard result.status == 0, let digest = result.stdout.split(separator: " ").first else {
        throw TestFailure("sha256sum '\(path)' failed: \(result.stderr)")
    }
    return String(digest)
}
