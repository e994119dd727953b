import Foundation
import Glibc
import LifeboatCore
import Logging
import Synchronization

/// A store that kills its process with `SIGKILL` at the N-th operation it counts — for the
/// crash harness (`Tests/LifeboatIntegrationTests/CrashHarness.swift`), which sweeps N over a
/// whole run instead of guessing times. Test-only: `Repository.store` puts it around every
/// store it opens when, and only when, the environment has
///
/// - `LIFEBOAT_CRASH_AFTER_WRITES=N`: counts what changes the repository — `put`, `delete`,
///   `copy`, a writer's `commit`, and every 1 MiB a writer has passed on (so that the N-th
///   can be in the middle of a streamed object: its first bytes written, the rest not);
/// - `LIFEBOAT_CRASH_AFTER_OPERATIONS=N`: the same plus reads — a listing page, `stat`,
///   opening a reader, and every 1 MiB read.
///
/// The process dies *before* the N-th operation happens, with no cleanup and no message:
/// what `kill -9` at that moment leaves. The count is process-wide (a cleanup reopening the
/// repository, or a second repository, goes on counting). Each counted operation is logged
/// at debug level (`crash.operation`: its number), so a run left uncrashed (N larger than
/// any run makes) tells the harness how many it has. Nothing else reads the variables.
public struct CrashAfterOperations: ObjectStore {
    public static let writesVariable = "LIFEBOAT_CRASH_AFTER_WRITES"
    public static let operationsVariable = "LIFEBOAT_CRASH_AFTER_OPERATIONS"
    /// Bytes written (or read) through one writer (reader) between two counted operations.
    public static let streamStep = 1 << 20

    /// The operations counted so far in this process.
    private static let counted = Atomic<Int>(0)

    public let inner: any ObjectStore
    let limit: Int
    let countsReads: Bool
    let logger: Logger

    /// `store` as it is, unless the environment asks for a crash.
    public static func wrap(_ store: any ObjectStore, environment: [String: String], logger: Logger) -> any ObjectStore {
        if let value = environment[writesVariable], let limit = Int(value), limit > 0 {
            return CrashAfterOperations(inner: store, limit: limit, countsReads: false, logger: logger)
        }
        if let value = environment[operationsVariable], let limit = Int(value), limit > 0 {
            return CrashAfterOperations(inner: store, limit: limit, countsReads: true, logger: logger)
        }
        return store
    }

    /// Counts one operation, and dies when it is the N-th.
    func count(_ what: @autoclosure () -> String, read: Bool = false) {
        guard !read || countsReads else { return }
        let number = Self.counted.add(1, ordering: .sequentiallyConsistent).newValue
        logger.debug("store operation counted", metadata: ["crash.operation": "\(number)", "crash.what": "\(what())"])
        guard number >= limit else { return }
        kill(getpid(), SIGKILL)
        while true { pause() }
    }

    public var location: String { inner.location }
    public var features: StoreFeatures { inner.features }

    public func listPage(_ request: ListRequest) throws -> ListPage {
        count("list \(request.prefix)", read: true)
        return try inner.listPage(request)
    }

    public func stat(key: String) throws -> ObjectInfo? {
        count("stat \(key)", read: true)
        return try inner.stat(key: key)
    }

    public func openWriter(key: String, ifAbsent: Bool) throws -> any ObjectWriter {
        CountingWriter(inner: try inner.openWriter(key: key, ifAbsent: ifAbsent), store: self)
    }

    public func openReader(key: String) throws -> any ObjectReader {
        count("open \(key)", read: true)
        return CountingReader(inner: try inner.openReader(key: key), store: self)
    }

    public func put(key: String, bytes: [UInt8], ifAbsent: Bool) throws {
        count("put \(key)")
        try inner.put(key: key, bytes: bytes, ifAbsent: ifAbsent)
    }

    public func copy(from source: String, to destination: String) throws {
        count("copy \(source) to \(destination)")
        try inner.copy(from: source, to: destination)
    }

    public func delete(keys: [String]) throws {
        count("delete \(keys.first ?? "")\(keys.count > 1 ? " and \(keys.count - 1) more" : "")")
        try inner.delete(keys: keys)
    }

    public func discardIncompleteWrites(prefix: String, olderThan cutoff: Date?, dryRun: Bool) throws -> [IncompleteWrite] {
        count("\(dryRun ? "find" : "discard") incomplete writes under \(prefix)", read: dryRun)
        return try inner.discardIncompleteWrites(prefix: prefix, olderThan: cutoff, dryRun: dryRun)
    }
}

/// A writer that counts every `streamStep` bytes passed on, and its commit.
private final class CountingWriter: ObjectWriter {
    let inner: any ObjectWriter
    let store: CrashAfterOperations
    var written = 0

    init(inner: any ObjectWriter, store: CrashAfterOperations) {
        self.inner = inner
        self.store = store
    }

    var key: String { inner.key }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            // Up to the next step boundary, then count the step before going past it.
            let toBoundary = CrashAfterOperations.streamStep - written % CrashAfterOperations.streamStep
            if written > 0 && toBoundary == CrashAfterOperations.streamStep {
                store.count("write \(key) past \(written) bytes")
            }
            let n = min(toBoundary, bytes.count - offset)
            try inner.write(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)]))
            offset += n
            written += n
        }
    }

    func commit() throws {
        store.count("commit \(key) (\(written) bytes)")
        try inner.commit()
    }

    func abort() { inner.abort() }
}

/// A reader that counts every `streamStep` bytes read.
private final class CountingReader: ObjectReader {
    let inner: any ObjectReader
    let store: CrashAfterOperations
    var read = 0

    init(inner: any ObjectReader, store: CrashAfterOperations) {
        self.inner = inner
        self.store = store
    }

    var key: String { inner.key }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if read > 0 && read % CrashAfterOperations.streamStep == 0 {
            store.count("read \(key) past \(read) bytes", read: true)
        }
        let limit = min(buffer.count, CrashAfterOperations.streamStep - read % CrashAfterOperations.streamStep)
        let n = try inner.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<limit]))
        read += n
        return n
    }

    func close() { inner.close() }
}
