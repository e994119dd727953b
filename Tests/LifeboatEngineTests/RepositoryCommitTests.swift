import Foundation
import LifeboatCore
import LifeboatEngine
import Synchronization
import Testing

/// A store whose first read of the repository marker finds nothing: what `prepareForWriting`
/// sees when another process creates the marker between its read and its `put`.
final class MarkerBlindStore: ObjectStore, Sendable {
    let inner: any ObjectStore
    private let blind = Mutex(true)
    init(inner: any ObjectStore) { self.inner = inner }
    var location: String { inner.location }
    var features: StoreFeatures { inner.features }
    func listPage(_ request: ListRequest) throws -> ListPage { try inner.listPage(request) }
    func stat(key: String) throws -> ObjectInfo? { try inner.stat(key: key) }
    func openWriter(key: String, ifAbsent: Bool) throws -> any ObjectWriter { try inner.openWriter(key: key, ifAbsent: ifAbsent) }
    func openReader(key: String) throws -> any ObjectReader {
        if key == Repository.formatKey, blind.withLock({ blind -> Bool in
            defer { blind = false }
            return blind
        }) {
            throw LifeboatError(.notFound, "object '\(key)' does not exist (yet, for this reader)")
        }
        return try inner.openReader(key: key)
    }
    func put(key: String, bytes: [UInt8], ifAbsent: Bool) throws { try inner.put(key: key, bytes: bytes, ifAbsent: ifAbsent) }
    func copy(from source: String, to destination: String) throws { try inner.copy(from: source, to: destination) }
    func delete(keys: [String]) throws { try inner.delete(keys: keys) }
}

/// The repository's commit points on the storage contract's conditional writes.
@Suite
struct RepositoryCommitPoints {
    let now = Date(timeIntervalSince1970: 1_795_000_000)

    func manifest(id: String) throws -> Manifest {
        Manifest(policy: "etc", id: id, source: try SourceRecord(kind: "files", details: FilesRecord(path: "/etc", hostname: nil)),
                 startedAt: now, finishedAt: now, tool: ToolRecord(version: "test"), artifacts: [])
    }

    @Test func aSecondCommitOfTheSameBackupIsRefusedAndNamesTheBackup() throws {
        let repository = Repository(name: "memory", store: MemoryStore(clock: { [now] in now }))
        try repository.prepareForWriting(now: now)
        try repository.commit(try manifest(id: "20261121T020000Z"))
        var second = try manifest(id: "20261121T020000Z")
        second.finishedAt = now.addingTimeInterval(60)

        let error = #expect(throws: LifeboatError.self) { try repository.commit(second) }
        #expect(error?.code == .alreadyExists)
        #expect(error?.message == "backup 20261121T020000Z of policy 'etc' is already committed at memory:/etc/backups/20261121T020000Z/manifest.json; a committed backup is never replaced",
                "\(String(describing: error))")
        #expect(error?.hint?.contains("run the backup again") == true)
        #expect(error?.exitStatus == 1)
        #expect(try repository.manifest(policy: "etc", id: "20261121T020000Z").finishedAt == now)
    }

    @Test func aRepositoryMarkerCreatedByAnotherProcessMeanwhileIsAccepted() throws {
        let memory = MemoryStore(clock: { [now] in now })
        try Repository(name: "first", store: memory).prepareForWriting(now: now)
        let marker = try memory.stat(key: Repository.formatKey)
        // The second process does not see the marker when it first reads, and its conditional put loses.
        try Repository(name: "second", store: MarkerBlindStore(inner: memory)).prepareForWriting(now: now)
        #expect(try memory.stat(key: Repository.formatKey) == marker)
    }
}
