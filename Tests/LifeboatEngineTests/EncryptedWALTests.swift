import Foundation
import Synchronization
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Testing
import TestSupport

/// WAL archiving knows nothing of encryption: through an `EncryptedStore` a segment is pushed
/// encrypted, fetched back verified, and a damaged one is refused.
@Suite struct EncryptedWALArchive {
    let size: UInt64 = 1 << 20
    let systemIdentifier: UInt64 = 7_301_234_567_890_123_456
    let now = Date(timeIntervalSince1970: 1_795_000_000)

    @Test func aSegmentIsPushedEncryptedAndFetchedBackVerified() throws {
        let inner = MemoryStore(clock: { [now] in now })
        let master = MasterKey(bytes: Array(repeating: 0x42, count: 32), origin: "a test key")
        let store = try EncryptedStore(inner: inner, repository: "mem", master: master, now: { [now] in now })
        let wal = WALArchive(repository: Repository(name: "mem", store: store), policy: "pg", context: RunContext(logger: quietLogger))
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let segment = WALSegment(timeline: 1, number: 3, segmentSize: size)
        let bytes = fakeSegment(segment, systemIdentifier: systemIdentifier)
        let path = try scratch.write("pg_wal/" + segment.name, bytes: bytes)
        let record = try wal.record(forCluster: systemIdentifier, segmentSize: size)
        let result = try wal.push(path: path, as: .segment(segment), systemIdentifier: systemIdentifier, record: record)
        guard case .archived = result else {
            Issue.record("expected a new object, got \(result)")
            return
        }
        let key = "pg/wal/0000000100000000/000000010000000000000003.tar.zst"
        let stored = try inner.readAll(key: key)
        #expect(stored.starts(with: Array("LBCRYPT".utf8)))
        #expect(try inner.listAll(prefix: "keys/").count == 1)
        #expect(try wal.fetch(.segment(segment), to: scratch.path + "/RECOVERYXLOG"))
        #expect(try scratch.read("RECOVERYXLOG") == bytes)

        var damaged = stored
        damaged[damaged.count / 2] ^= 1
        try inner.put(key: key, bytes: damaged, ifAbsent: false)
        let error = #expect(throws: LifeboatError.self) { _ = try wal.fetch(.segment(segment), to: scratch.path + "/DAMAGED") }
        #expect(error?.message.contains("object '\(key)'") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("failed authentication") == true)
    }
}

/// A store on which another process runs a first encrypted backup's `prepareForWriting` (key
/// set, then marker) between this process's look for the key files and its look for the marker.
final class FirstBackupMeanwhile: ObjectStore, Sendable {
    let inner: MemoryStore
    let other: @Sendable () throws -> Void
    private let pending = Mutex(true)
    init(inner: MemoryStore, other: @escaping @Sendable () throws -> Void) { self.inner = inner; self.other = other }
    var location: String { inner.location }
    var features: StoreFeatures { inner.features }
    func listPage(_ request: ListRequest) throws -> ListPage { try inner.listPage(request) }
    func stat(key: String) throws -> ObjectInfo? {
        if key == Repository.formatKey, pending.withLock({ value in defer { value = false }; return value }) { try other() }
        return try inner.stat(key: key)
    }
    func openWriter(key: String, ifAbsent: Bool) throws -> any ObjectWriter { try inner.openWriter(key: key, ifAbsent: ifAbsent) }
    func openReader(key: String) throws -> any ObjectReader { try inner.openReader(key: key) }
    func put(key: String, bytes: [UInt8], ifAbsent: Bool) throws { try inner.put(key: key, bytes: bytes, ifAbsent: ifAbsent) }
    func copy(from source: String, to destination: String) throws { try inner.copy(from: source, to: destination) }
    func delete(keys: [String]) throws { try inner.delete(keys: keys) }
}

@Suite struct EncryptedRepositoryCreation {
    let now = Date(timeIntervalSince1970: 1_795_000_000)
    let master = MasterKey(bytes: Array(repeating: 0x42, count: 32), origin: "$TEST_KEY")
    let config = RepositoryConfig(name: "mem", kind: .local(path: "/nonexistent"), encryption: EncryptionConfig(key: .environment("TEST_KEY")))
    var context: RunContext { RunContext(logger: quietLogger, environment: ["TEST_KEY": String(repeating: "42", count: 32)]) }

    @Test func theKeySetIsWrittenBeforeTheMarker() throws {
        let inner = MemoryStore(clock: { [now] in now })
        let store = try EncryptedStore(inner: inner, repository: "mem", master: master, now: { [now] in now })
        try Repository(name: "mem", store: store).prepareForWriting(now: now)
        #expect(try inner.listAll(prefix: "keys/").map(\.key) == [KeyFileRecord.key(id: master.id)])
    }

    @Test func twoFirstBackupsWithOneKeyAtOnceBothGoOn() throws {
        let inner = MemoryStore(clock: { [now] in now })
        let (master, now) = (master, now)
        let racing = FirstBackupMeanwhile(inner: inner) {
            let store = try EncryptedStore(inner: inner, repository: "mem", master: master, now: { now })
            try Repository(name: "mem", store: store).prepareForWriting(now: now)
        }
        let store = try RepositoryEncryption.wrap(racing, config: config, context: context)
        #expect((store as? EncryptedStore)?.hasKeySet == true)
    }
}
