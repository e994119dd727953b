import Foundation
import Synchronization

/// A store in memory that keeps the whole contract: listings in byte order with S3's
/// semantics, writers invisible until committed, conditional commits, copies inside the store.
/// For fast engine tests, and as the base of decorators (encryption, fault injection).
///
/// Keys are compared as bytes (as S3 and filesystems do), so two keys that Swift's `String`
/// would call equal (`é` precomposed and decomposed) are two objects. ETags are generation
/// numbers: every commit, put or copy takes the next one. `modified` comes from the clock
/// the store is given (the core never reads the clock itself).
///
/// Copies of a `MemoryStore` share their objects.
public struct MemoryStore: ObjectStore {
    struct Object: Sendable {
        var key: String
        var bytes: [UInt8]
        var generation: UInt64
        var modified: Date

        var info: ObjectInfo { ObjectInfo(key: key, size: Int64(bytes.count), etag: String(generation), modified: modified) }
    }

    struct State: Sendable {
        var objects: [[UInt8]: Object] = [:]
        var generation: UInt64 = 0
    }

    /// The shared state: a `Mutex` is not copyable, so it lives in a class.
    final class Storage: Sendable {
        let state = Mutex(State())
    }

    public let location: String
    let clock: @Sendable () -> Date
    let storage = Storage()

    public init(location: String = "memory:", clock: @escaping @Sendable () -> Date) {
        self.location = location
        self.clock = clock
    }

    public var features: StoreFeatures { [.conditionalWrite, .serverSideCopy] }

    public func listPage(_ request: ListRequest) throws -> ListPage {
        try request.validate(in: location)
        let prefix = Array(request.prefix.utf8)
        // A snapshot of the matching objects, so the lock is not held while sorting.
        let matching = storage.state.withLock { state in
            state.objects.filter { $0.key.starts(with: prefix) }
        }
        var builder = ListPageBuilder(request)
        for (key, object) in matching.sorted(by: { KeyOrder.precedes($0.key, $1.key) }) {
            guard builder.offer(key: key, info: { object.info }) else { break }
        }
        return builder.page
    }

    public func stat(key: String) throws -> ObjectInfo? {
        try check(key)
        return storage.state.withLock { $0.objects[Array(key.utf8)]?.info }
    }

    public func openWriter(key: String, ifAbsent: Bool) throws -> any ObjectWriter {
        try check(key)
        return MemoryObjectWriter(store: self, key: key, ifAbsent: ifAbsent)
    }

    public func openReader(key: String) throws -> any ObjectReader {
        try check(key)
        guard let object = storage.state.withLock({ $0.objects[Array(key.utf8)] }) else {
            throw LifeboatError(.notFound, "object '\(key)' does not exist in repository \(location)")
        }
        return MemoryObjectReader(key: key, bytes: object.bytes)
    }

    public func put(key: String, bytes: [UInt8], ifAbsent: Bool) throws {
        try check(key)
        try store(key: key, bytes: bytes, ifAbsent: ifAbsent)
    }

    public func copy(from source: String, to destination: String) throws {
        try check(source)
        try check(destination)
        let now = clock()
        try storage.state.withLock { state in
            guard let object = state.objects[Array(source.utf8)] else {
                throw LifeboatError(.notFound, "object '\(source)' does not exist in repository \(location); it cannot be copied")
            }
            state.generation += 1
            state.objects[Array(destination.utf8)] = Object(key: destination, bytes: object.bytes,
                                                            generation: state.generation, modified: now)
        }
    }

    public func delete(keys: [String]) throws {
        for key in keys { try check(key) }
        storage.state.withLock { state in
            for key in keys { state.objects[Array(key.utf8)] = nil }
        }
    }

    /// Makes an object visible, atomically; with `ifAbsent`, only when the key is free.
    func store(key: String, bytes: [UInt8], ifAbsent: Bool) throws {
        let now = clock()
        try storage.state.withLock { state in
            let byteKey = Array(key.utf8)
            if ifAbsent, state.objects[byteKey] != nil {
                throw Self.alreadyExists(key, in: location)
            }
            state.generation += 1
            state.objects[byteKey] = Object(key: key, bytes: bytes, generation: state.generation, modified: now)
        }
    }

    static func alreadyExists(_ key: String, in location: String) -> LifeboatError {
        LifeboatError(.alreadyExists, "object '\(key)' already exists in repository \(location); it is never replaced")
    }

    /// Keys as the other stores accept them: not empty, no empty, `.` or `..` segment, and
    /// not absolute — so a test that passes here does not fail on a real store.
    func check(_ key: String) throws {
        let components = key.split(separator: "/", omittingEmptySubsequences: false)
        guard !key.isEmpty, !components.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw LifeboatError(.internalError, "invalid object key '\(key)'")
        }
    }
}

/// Collects the bytes; `commit` stores them in one step.
final class MemoryObjectWriter: ObjectWriter {
    let store: MemoryStore
    let key: String
    let ifAbsent: Bool
    private var bytes: [UInt8] = []
    private var finished = false

    init(store: MemoryStore, key: String, ifAbsent: Bool) {
        self.store = store
        self.key = key
        self.ifAbsent = ifAbsent
    }

    func write(_ buffer: UnsafeRawBufferPointer) throws {
        guard !finished else { throw LifeboatError(.internalError, "write to '\(key)' in \(store.location) after it was closed") }
        bytes.append(contentsOf: buffer)
    }

    func commit() throws {
        guard !finished else { throw LifeboatError(.internalError, "commit of '\(key)' in \(store.location) after it was closed") }
        finished = true
        defer { bytes = [] }
        try store.store(key: key, bytes: bytes, ifAbsent: ifAbsent)
    }

    func abort() {
        finished = true
        bytes = []
    }
}

/// Reads the bytes the object had when it was opened (as an open file keeps its contents
/// when it is replaced).
final class MemoryObjectReader: ObjectReader {
    let key: String
    private var bytes: [UInt8]
    private var offset = 0

    init(key: String, bytes: [UInt8]) {
        self.key = key
        self.bytes = bytes
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - offset)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<(offset + n)]))
        }
        offset += n
        return n
    }

    func close() {
        bytes = []
        offset = 0
    }
}
