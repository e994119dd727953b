import Foundation
import Glibc
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import LifeboatS3
import Logging
import Synchronization
import Testing
import TestSupport

// The repository storage contract (version 2), checked the same way on every store. To add a
// store (a decorator over another, say), add a case to `StoreKind` and say how to make one in
// `StoreFixture.make`; every test below then runs against it.

/// Every kind of store the contract is checked on.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case local
    case s3
    case memory
    /// `EncryptedStore` over a local directory and over S3 (the repository's encryption).
    case encryptedLocal
    case encryptedS3
    /// `CrashAfterOperations` over a local directory, with a count no test reaches (the crash
    /// harness's decorator, which must pass everything through).
    case countedLocal

    var testDescription: String { rawValue }

    /// What each store declares it can do (and the tests hold it to).
    var expectedFeatures: StoreFeatures {
        switch self {
        case .local, .countedLocal: return [.conditionalWrite]
        case .s3: return [.conditionalWrite, .serverSideCopy]
        case .memory: return [.conditionalWrite, .serverSideCopy]
        // Objects are bound to their names: a copy re-encrypts through the process.
        case .encryptedLocal, .encryptedS3: return [.conditionalWrite]
        }
    }
}

/// A fresh, empty store of one kind, and what to clean up after it.
final class StoreFixture {
    let kind: StoreKind
    let store: any ObjectStore
    /// The directory under a local store (also under an encrypted one), for looking at its
    /// temporary files.
    let localRoot: String?
    /// The S3 store under an S3 store (also under an encrypted one), for looking at its
    /// multipart uploads.
    let s3: S3Store?
    private let cleanup: () -> Void

    /// Larger than one part of a multipart upload on S3 (the test store's parts are S3's
    /// minimum, 5 MiB), so that conditional commits and reads go through the multipart path.
    static let largeObjectSize = (5 << 20) + (1 << 20) + 3

    private init(kind: StoreKind, store: any ObjectStore, localRoot: String? = nil, s3: S3Store? = nil, cleanup: @escaping () -> Void = {}) {
        self.kind = kind
        self.store = store
        self.localRoot = localRoot
        self.s3 = s3
        self.cleanup = cleanup
    }

    static func make(_ kind: StoreKind) throws -> StoreFixture {
        switch kind {
        case .local:
            let directory = try TemporaryDirectory("lifeboat-store")
            // The root does not exist yet: the store creates it (0700) on the first write.
            return StoreFixture(kind: kind, store: LocalStore(root: directory.subpath("repository")), localRoot: directory.subpath("repository"),
                                cleanup: { directory.remove() })
        case .s3:
            // One moto server for the whole test process; each store gets a prefix of its own.
            let store = S3Store(client: try directClient(try SharedS3Server.get()), prefix: "conformance-\(UUID().uuidString)",
                                partSize: 5 << 20, concurrency: 2, readAhead: 2, logger: quietLogger)
            return StoreFixture(kind: kind, store: store, s3: store)
        case .memory:
            return StoreFixture(kind: kind, store: MemoryStore(location: "memory:conformance", clock: { Date() }))
        case .encryptedLocal, .encryptedS3:
            let inner = try make(kind == .encryptedLocal ? .local : .s3)
            // A key set given directly: no key file in the store, whose listings the tests check.
            let store = EncryptedStore(inner: inner.store, keys: RepositoryKeySet.generate(random: .system))
            return StoreFixture(kind: kind, store: store, localRoot: inner.localRoot, s3: inner.s3, cleanup: { inner.close() })
        case .countedLocal:
            let inner = try make(.local)
            let store = CrashAfterOperations.wrap(inner.store, environment: [CrashAfterOperations.writesVariable: "\(Int.max)"], logger: quietLogger)
            try #require(store is CrashAfterOperations)
            return StoreFixture(kind: kind, store: store, localRoot: inner.localRoot, cleanup: { inner.close() })
        }
    }

    func close() { cleanup() }

    /// What a writer killed before its commit leaves: a writer given more than one S3 part,
    /// neither committed nor aborted. The caller keeps it to the end of the test (its deinit
    /// aborts). Returns once the store shows it: an encrypted writer hands its bytes to the
    /// inner store on a thread of its own.
    func leaveIncompleteWrite(_ key: String) throws -> any ObjectWriter {
        let writer = try store.openWriter(key: key)
        try write(pseudoRandomBytes(Self.largeObjectSize), to: writer)
        guard kind != .memory else { return writer }
        let deadline = Date(timeIntervalSinceNow: 60)
        while try !rawIncompleteWrites().contains(key) {
            guard Date() < deadline else { throw TestSupportError("\(kind): the incomplete write of \(key) did not appear within 60 s") }
            usleep(10_000)
        }
        return writer
    }

    /// The incomplete writes as the storage underneath shows them, by the key they were
    /// writing, sorted: temporary files under the local directory, multipart uploads on S3.
    func rawIncompleteWrites() throws -> [String] {
        if let localRoot {
            return try filesUnder(localRoot).compactMap { path -> String? in
                let name = path.split(separator: "/").last.map(String.init) ?? path
                guard name.hasPrefix("."), let marker = name.range(of: ".tmp-", options: .backwards) else { return nil }
                let directory = path.dropLast(name.count)
                return String(directory + name[name.index(after: name.startIndex)..<marker.lowerBound])
            }.sorted()
        }
        if let s3 {
            return try s3.client.listMultipartUploads(prefix: s3.prefix).map { String($0.key.dropFirst(s3.prefix.count)) }.sorted()
        }
        return []
    }

    /// Sets the modification time of the temporary file of `key` (a local store's) to `age`
    /// seconds ago: what the passage of time does to a killed writer's file.
    func ageIncompleteWrite(_ key: String, by age: TimeInterval) throws {
        guard let localRoot else { return }
        let directory = key.split(separator: "/").dropLast().joined(separator: "/")
        let name = String(key.split(separator: "/").last ?? "")
        let parent = directory.isEmpty ? localRoot : localRoot + "/" + directory
        let files = try FileManager.default.contentsOfDirectory(atPath: parent).filter { $0.hasPrefix(".\(name).tmp-") }
        try #require(files.count == 1, "temporary files of \(key): \(files)")
        let seconds = Int(Date().timeIntervalSince1970 - age)
        let times = [timeval(tv_sec: seconds, tv_usec: 0), timeval(tv_sec: seconds, tv_usec: 0)]
        guard utimes(parent + "/" + files[0], times) == 0 else { throw TestSupportError("utimes: \(String(cString: strerror(errno)))") }
    }
}

/// moto, started once per test process on first use (it exits when the process does).
enum SharedS3Server {
    private static let server = Mutex<S3TestServer?>(nil)

    static func get() throws -> S3TestServer {
        try server.withLock { server in
            if let server { return server }
            let started = try S3TestServer.start()
            server = started
            return started
        }
    }
}

// MARK: Helpers

/// Writes an object through a writer, in uneven pieces (as libarchive writes).
func writeObject(_ store: any ObjectStore, _ key: String, _ bytes: [UInt8], ifAbsent: Bool = false) throws {
    let writer = try store.openWriter(key: key, ifAbsent: ifAbsent)
    do {
        try write(bytes, to: writer)
        try writer.commit()
    } catch {
        writer.abort()
        throw error
    }
}

func write(_ bytes: [UInt8], to writer: any ObjectWriter) throws {
    var offset = 0
    while offset < bytes.count {
        let n = min(777_777, bytes.count - offset)
        try bytes.withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + n)])) }
        offset += n
    }
}

/// Every page of a listing, following cursors.
func allPages(_ store: any ObjectStore, _ request: ListRequest) throws -> [ListPage] {
    var request = request
    var pages: [ListPage] = []
    while true {
        let page = try store.listPage(request)
        pages.append(page)
        guard let cursor = page.nextCursor else { return pages }
        #expect(pages.count < 1000, "a listing that does not end")
        request.cursor = cursor
    }
}

/// Keys as bytes: Swift's `==` on strings calls canonically equivalent keys equal, stores do not.
func bytes(_ keys: [String]) -> [[UInt8]] { keys.map { Array($0.utf8) } }

func sortedByBytes(_ keys: [String]) -> [String] { keys.sorted(by: KeyOrder.precedes) }

/// Keys that sort differently by bytes than by name or by directory: `a-c` and `a.` before
/// `a/b` (`-` is 0x2D, `.` 0x2E, `/` 0x2F), `a/b` before `a0`, upper before lower case, `é`
/// precomposed (0xC3) after `e` + combining accent (0x65), and characters S3 requests must encode.
let awkwardKeys = [
    "a.", "a-c", "a/b", "a/c/d", "a/c/e", "a0", "a b", "B", "b/x/y/z", "b+c", "100%", "e\u{301}", "\u{E9}", "z",
]

// MARK: The suite

@Suite(.timeLimit(.minutes(10)))
struct StoreConformance {
    @Test(arguments: StoreKind.allCases)
    func featuresAreDeclaredAsDocumented(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            #expect(fixture.store.features == kind.expectedFeatures)
        }
    }

    // MARK: Objects

    @Test(arguments: StoreKind.allCases)
    func putThenStatGivesSizeETagAndModificationTime(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            let before = Date()
            try fixture.store.put(key: "pg/one.bin", bytes: Array("seven b".utf8), ifAbsent: false)
            let after = Date()
            let info = try #require(try fixture.store.stat(key: "pg/one.bin"))
            #expect(info.key == "pg/one.bin")
            #expect(info.size == 7)
            #expect(!info.etag.isEmpty)
            // S3's Last-Modified has whole seconds.
            #expect(info.modified >= before.addingTimeInterval(-1.5) && info.modified <= after.addingTimeInterval(1.5),
                    "\(info.modified) not within \(before) … \(after)")
            #expect(try fixture.store.stat(key: "pg/other.bin") == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aListingReportsTheSameSizeAndETagAsStat(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            try fixture.store.put(key: "k/object", bytes: pseudoRandomBytes(1234), ifAbsent: false)
            let stat = try #require(try fixture.store.stat(key: "k/object"))
            let listed = try fixture.store.listAll(prefix: "k/")
            #expect(listed.map(\.key) == ["k/object"])
            #expect(listed.first?.size == stat.size)
            #expect(listed.first?.etag == stat.etag)
            // S3 lists milliseconds and HEAD whole seconds.
            #expect(abs((listed.first?.modified ?? .distantPast).timeIntervalSince(stat.modified)) < 1)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func replacingAnObjectChangesItsETag(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            // Different bytes of the same size: S3's ETag of a single PUT is the MD5 of the bytes.
            try fixture.store.put(key: "x", bytes: Array("first".utf8), ifAbsent: false)
            let first = try #require(try fixture.store.stat(key: "x"))
            try writeObject(fixture.store, "x", Array("again".utf8))
            let second = try #require(try fixture.store.stat(key: "x"))
            #expect(second.etag != first.etag)
            #expect(try fixture.store.readAll(key: "x") == Array("again".utf8))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func putIfAbsentOnAnExistingKeyThrowsAlreadyExistsAndKeepsTheOriginal(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            try fixture.store.put(key: "pg/manifest.json", bytes: Array("first".utf8), ifAbsent: true)
            let original = try #require(try fixture.store.stat(key: "pg/manifest.json"))
            let error = #expect(throws: LifeboatError.self) {
                try fixture.store.put(key: "pg/manifest.json", bytes: Array("second".utf8), ifAbsent: true)
            }
            #expect(error?.code == .alreadyExists, "\(String(describing: error))")
            #expect(error?.message.contains("manifest.json") == true, "the error names the object: \(String(describing: error))")
            #expect(try fixture.store.readAll(key: "pg/manifest.json") == Array("first".utf8))
            #expect(try fixture.store.stat(key: "pg/manifest.json")?.etag == original.etag)
            // Without ifAbsent, the object is replaced.
            try fixture.store.put(key: "pg/manifest.json", bytes: Array("third".utf8), ifAbsent: false)
            #expect(try fixture.store.readAll(key: "pg/manifest.json") == Array("third".utf8))
        }
    }

    @Test(arguments: StoreKind.allCases, [1000, StoreFixture.largeObjectSize])
    func aWriterOpenedIfAbsentThatLosesTheRaceThrowsAlreadyExistsAndLeavesTheWinner(kind: StoreKind, size: Int) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            let store = fixture.store
            let winnerBytes = pseudoRandomBytes(size, seed: 1), loserBytes = pseudoRandomBytes(size, seed: 2)
            let winner = try store.openWriter(key: "race/object", ifAbsent: true)
            let loser = try store.openWriter(key: "race/object", ifAbsent: true)
            try write(winnerBytes, to: winner)
            try write(loserBytes, to: loser)
            try winner.commit()
            let committed = try #require(try store.stat(key: "race/object"))

            let error = #expect(throws: LifeboatError.self) { try loser.commit() }
            #expect(error?.code == .alreadyExists, "\(String(describing: error))")
            #expect(error?.message.contains("race/object") == true, "the error names the object: \(String(describing: error))")
            // The store cleaned up by itself: on S3, the losing multipart upload is aborted.
            if let s3 = store as? S3Store {
                #expect(try s3.client.listMultipartUploads(prefix: s3.prefix).isEmpty)
            }
            loser.abort()

            #expect(try store.stat(key: "race/object")?.etag == committed.etag)
            #expect(try store.readAll(key: "race/object") == winnerBytes)
            #expect(try store.listAll(prefix: "race/").map(\.key) == ["race/object"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aWriterOpenedIfAbsentCommitsWhenTheKeyIsFree(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            try writeObject(fixture.store, "fresh/object", Array("mine".utf8), ifAbsent: true)
            #expect(try fixture.store.readAll(key: "fresh/object") == Array("mine".utf8))
        }
    }

    @Test(arguments: StoreKind.allCases, [1000, StoreFixture.largeObjectSize])
    func anUncommittedOrAbortedWriterLeavesNothingListedOrStatable(kind: StoreKind, size: Int) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            let store = fixture.store
            try store.put(key: "w/other", bytes: [1], ifAbsent: false)
            let writer = try store.openWriter(key: "w/pending")
            try write(pseudoRandomBytes(size), to: writer)
            // Written but not committed: invisible.
            #expect(try store.stat(key: "w/pending") == nil)
            #expect(try store.listAll(prefix: "").map(\.key) == ["w/other"])
            #expect(throws: LifeboatError.self) { _ = try store.openReader(key: "w/pending") }
            writer.abort()
            #expect(try store.stat(key: "w/pending") == nil)
            #expect(try store.listAll(prefix: "").map(\.key) == ["w/other"])
            if let s3 = store as? S3Store {
                #expect(try s3.client.listMultipartUploads(prefix: s3.prefix).isEmpty)
            }
        }
    }

    @Test(arguments: StoreKind.allCases, [0, 1, 65_537, StoreFixture.largeObjectSize])
    func readingReturnsExactlyTheBytesWritten(kind: StoreKind, size: Int) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            let data = pseudoRandomBytes(size)
            try writeObject(fixture.store, "r/object.bin", data)
            #expect(try fixture.store.stat(key: "r/object.bin")?.size == Int64(size))
            let reader = try fixture.store.openReader(key: "r/object.bin")
            defer { reader.close() }
            var read: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 300_007)
            while true {
                let n = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
                if n == 0 { break }
                read += buffer[0..<n]
            }
            #expect(read.count == size)
            #expect(read == data)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func openingAnAbsentKeyThrowsNotFound(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            let error = #expect(throws: LifeboatError.self) { _ = try fixture.store.openReader(key: "no/such/object") }
            #expect(error?.code == .notFound, "\(String(describing: error))")
        }
    }

    /// What another run's lock looks like to a run that lists the locks: listed, then
    /// released before it is read. A filesystem still reads an unlinked file whole; S3 says
    /// the object is gone. Either way, never another error: the caller skips a lock that was
    /// released meanwhile by its `.notFound`.
    @Test(arguments: StoreKind.allCases)
    func anObjectDeletedAfterItsReaderWasOpenedReadsWholeOrThrowsNotFound(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            let data = Array(#"{"kind": "shared", "command": "backup etc"}"#.utf8)
            try fixture.store.put(key: "locks/released.json", bytes: data, ifAbsent: true)
            let reader = try fixture.store.openReader(key: "locks/released.json")
            defer { reader.close() }
            try fixture.store.delete(keys: ["locks/released.json"])
            var read: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            do {
                while true {
                    let n = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
                    if n == 0 { break }
                    read += buffer[0..<n]
                }
                #expect(read == data)
                #expect(kind != .s3, "S3 cannot read an object that is gone")
            } catch let error as LifeboatError {
                #expect(error.code == .notFound, "\(error)")
                #expect(error.message.contains("locks/released.json"), "the error names the object: \(error)")
            }
        }
    }

    /// Runs take and release locks in `locks/` at any moment. On a filesystem, a delete that
    /// empties a directory removes it: a write into that directory at the same moment must
    /// still succeed (the store creates the directory again), never fail for want of it.
    @Test(arguments: StoreKind.allCases)
    func writesIntoADirectoryThatConcurrentDeletesKeepEmptyingAllSucceed(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            let store = fixture.store
            let rounds = kind == .s3 || kind == .encryptedS3 ? 25 : 1500
            let results = together(2) { worker in
                for round in 0..<rounds {
                    let key = "locks/\(worker)-\(round).json"
                    try store.put(key: key, bytes: Array("lock \(worker) \(round)".utf8), ifAbsent: true)
                    try store.delete(keys: [key])
                }
            }
            for result in results {
                #expect(throws: Never.self) { try result.get() }
            }
            #expect(try store.listAll(prefix: "").isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func copyDuplicatesTheBytesAndReplacesTheDestination(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            let store = fixture.store
            let data = pseudoRandomBytes(100_003)
            try store.put(key: "src/object", bytes: data, ifAbsent: false)
            try store.put(key: "dst/object", bytes: Array("old".utf8), ifAbsent: false)
            try store.copy(from: "src/object", to: "dst/object")
            try store.copy(from: "src/object", to: "new/dir/object")
            #expect(try store.readAll(key: "dst/object") == data)
            #expect(try store.readAll(key: "new/dir/object") == data)
            #expect(try store.readAll(key: "src/object") == data)
            #expect(try store.listAll(prefix: "").map(\.key) == ["dst/object", "new/dir/object", "src/object"])
            // A copy is an object of its own: replacing the source leaves it alone.
            try store.put(key: "src/object", bytes: Array("changed".utf8), ifAbsent: false)
            #expect(try store.readAll(key: "dst/object") == data)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func copyingAnAbsentKeyThrowsNotFound(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            let error = #expect(throws: LifeboatError.self) { try fixture.store.copy(from: "no/such/object", to: "copy") }
            #expect(error?.code == .notFound, "\(String(describing: error))")
            #expect(try fixture.store.stat(key: "copy") == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func deletingAbsentKeysIsFine(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            let store = fixture.store
            try store.delete(keys: ["no/such/object", "neither"])
            try store.put(key: "d/a", bytes: [1], ifAbsent: false)
            try store.put(key: "d/b", bytes: [2], ifAbsent: false)
            try store.delete(keys: ["d/a", "d/a/below", "d/zz"])
            #expect(try store.listAll(prefix: "").map(\.key) == ["d/b"])
            try store.delete(keys: [])
        }
    }

    // MARK: Listing

    @Test(arguments: StoreKind.allCases, [2, 3])
    func listingReturnsKeysInByteOrderAcrossPages(kind: StoreKind, pageSize: Int) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            for key in awkwardKeys.shuffled() { try fixture.store.put(key: key, bytes: Array(key.utf8), ifAbsent: false) }
            let pages = try allPages(fixture.store, ListRequest(pageSize: pageSize))
            let keys = pages.flatMap { $0.objects.map(\.key) }
            #expect(bytes(keys) == bytes(sortedByBytes(awkwardKeys)), "\(keys)")
            #expect(pages.allSatisfy { $0.objects.count <= pageSize && $0.commonPrefixes.isEmpty })
            #expect(pages.dropLast().allSatisfy { $0.objects.count == pageSize && $0.nextCursor != nil })
            #expect(pages.count == (awkwardKeys.count + pageSize - 1) / pageSize)
            // Each object reports its own size.
            #expect(pages.flatMap(\.objects).allSatisfy { $0.size == Int64($0.key.utf8.count) })
        }
    }

    @Test(arguments: StoreKind.allCases)
    func forEachEntryWalksEveryPageInKeyOrderAndStopsWhenAsked(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            for key in awkwardKeys { try fixture.store.put(key: key, bytes: [0], ifAbsent: false) }
            var walked: [ListEntry] = []
            try fixture.store.forEachEntry(delimiter: "/", pageSize: 2) { entry in
                walked.append(entry)
                return true
            }
            // Objects and common prefixes merged in one byte order.
            let expected = ["100%", "B", "a b", "a-c", "a.", "a/", "a0", "b+c", "b/", "e\u{301}", "z", "\u{E9}"]
            #expect(bytes(walked.map(\.key)) == bytes(expected), "\(walked.map(\.key))")
            #expect(walked.filter { if case .prefix = $0 { true } else { false } }.map(\.key) == ["a/", "b/"])

            var seen: [String] = []
            try fixture.store.forEachObject(prefix: "a") { info in
                seen.append(info.key)
                return seen.count < 4
            }
            #expect(seen == ["a b", "a-c", "a.", "a/b"])
        }
    }

    @Test(arguments: StoreKind.allCases, [1, 2, 1000])
    func startAfterListsOnlyKeysSortingAfterIt(kind: StoreKind, pageSize: Int) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            for key in awkwardKeys { try fixture.store.put(key: key, bytes: [0], ifAbsent: false) }
            let sorted = sortedByBytes(awkwardKeys)
            // A key that exists, and one that does not (between `a/c/e` and `a0`).
            for startAfter in ["a/b", "a/d"] {
                let pages = try allPages(fixture.store, ListRequest(startAfter: startAfter, pageSize: pageSize))
                let keys = pages.flatMap { $0.objects.map(\.key) }
                #expect(bytes(keys) == bytes(sorted.filter { KeyOrder.precedes(startAfter, $0) }), "after \(startAfter): \(keys)")
            }
            // With a prefix: keys under it after the bound.
            let pages = try allPages(fixture.store, ListRequest(prefix: "a/", startAfter: "a/c/d", pageSize: pageSize))
            #expect(pages.flatMap { $0.objects.map(\.key) } == ["a/c/e"])
        }
    }

    @Test(arguments: StoreKind.allCases, [1, 2, 1000])
    func aDelimiterGivesCommonPrefixesAndNoKeysBelowThem(kind: StoreKind, pageSize: Int) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            let keys = ["pg/backups/20260101T000000Z/manifest.json", "pg/backups/20260101T000000Z/data/0000.tar.zst",
                        "pg/backups/20260102T000000Z/data/0000.tar.zst", "pg/backups/20260103T000000Z/manifest.json",
                        "pg/backups/notes", "pg/backups-old/x", "pg/lock", "etc/backups/20260101T000000Z/manifest.json"]
            for key in keys { try fixture.store.put(key: key, bytes: [0], ifAbsent: false) }

            let pages = try allPages(fixture.store, ListRequest(prefix: "pg/backups/", delimiter: "/", pageSize: pageSize))
            #expect(pages.flatMap(\.commonPrefixes) == ["pg/backups/20260101T000000Z/", "pg/backups/20260102T000000Z/",
                                                        "pg/backups/20260103T000000Z/"])
            #expect(pages.flatMap { $0.objects.map(\.key) } == ["pg/backups/notes"])
            #expect(pages.allSatisfy { $0.objects.count + $0.commonPrefixes.count <= pageSize })

            let top = try allPages(fixture.store, ListRequest(delimiter: "/", pageSize: pageSize))
            #expect(top.flatMap(\.commonPrefixes) == ["etc/", "pg/"])
            #expect(top.flatMap(\.objects).isEmpty)

            // A start-after beyond a common prefix leaves it out, and keeps those after it.
            let after = try allPages(fixture.store, ListRequest(prefix: "pg/backups/", delimiter: "/",
                                                                startAfter: "pg/backups/20260101T000000Z0", pageSize: pageSize))
            #expect(after.flatMap(\.commonPrefixes) == ["pg/backups/20260102T000000Z/", "pg/backups/20260103T000000Z/"])
        }
    }

    @Test(arguments: StoreKind.allCases, [1, 1000])
    func aDelimiterOtherThanSlashRollsUpAtItsFirstOccurrence(kind: StoreKind, pageSize: Int) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            for key in ["x-1", "x-2/y", "x/z-3", "x/z/4", "xy"] { try fixture.store.put(key: key, bytes: [0], ifAbsent: false) }
            let pages = try allPages(fixture.store, ListRequest(prefix: "x", delimiter: "-", pageSize: pageSize))
            #expect(pages.flatMap(\.commonPrefixes) == ["x-", "x/z-"])
            #expect(pages.flatMap { $0.objects.map(\.key) } == ["x/z/4", "xy"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func listingAnEmptyOrAbsentPrefixGivesNothing(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            let store = fixture.store
            #expect(try store.listPage(ListRequest()) == ListPage())
            #expect(try store.listPage(ListRequest(delimiter: "/")) == ListPage())
            try store.put(key: "a/b", bytes: [0], ifAbsent: false)
            for prefix in ["nothing/", "a/b/", "a/c", "b", "../a/", "a//"] {
                #expect(try store.listPage(ListRequest(prefix: prefix)) == ListPage(), "prefix \(prefix)")
                #expect(try store.listPage(ListRequest(prefix: prefix, delimiter: "/")) == ListPage(), "prefix \(prefix)")
            }
            #expect(try store.listPage(ListRequest(startAfter: "a/b")) == ListPage())
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aPrefixMatchesKeysByTheirBytesNotByDirectory(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            for key in ["pg/backups/2026a", "pg/backups/2026/x", "pg/backups/2027", "pg/backups/202"] {
                try fixture.store.put(key: key, bytes: [0], ifAbsent: false)
            }
            #expect(try fixture.store.listAll(prefix: "pg/backups/2026").map(\.key) == ["pg/backups/2026/x", "pg/backups/2026a"])
            #expect(try fixture.store.listAll(prefix: "pg/backups/2026/").map(\.key) == ["pg/backups/2026/x"])
        }
    }

    // MARK: Incomplete writes

    @Test(arguments: StoreKind.allCases)
    func discardingIncompleteWritesUnderAPrefixRemovesThemAndNothingElse(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            let store = fixture.store
            for key in ["d/kept", "d/sub/kept", "other/kept"] { try store.put(key: key, bytes: Array(key.utf8), ifAbsent: false) }
            let writers = try ["d/sub/pending", "d/pending", "other/pending"].map { try fixture.leaveIncompleteWrite($0) }
            defer { writers.forEach { $0.abort() } }
            let leaves = kind != .memory  // a memory writer's buffer goes with it

            // A dry run finds them and discards nothing.
            let found = try store.discardIncompleteWrites(prefix: "d/", olderThan: nil, dryRun: true)
            #expect(found.map(\.key).sorted() == (leaves ? ["d/pending", "d/sub/pending"] : []))
            #expect(try fixture.rawIncompleteWrites() == (leaves ? ["d/pending", "d/sub/pending", "other/pending"] : []))

            try store.discardIncompleteWrites(prefix: "d/")
            #expect(try fixture.rawIncompleteWrites() == (leaves ? ["other/pending"] : []))
            #expect(try store.discardIncompleteWrites(prefix: "d/", olderThan: nil, dryRun: true).isEmpty)
            #expect(try store.discardIncompleteWrites(prefix: "", olderThan: nil, dryRun: true).map(\.key) == (leaves ? ["other/pending"] : []))
            // Every committed object stays, and reads.
            #expect(try store.listAll(prefix: "").map(\.key) == ["d/kept", "d/sub/kept", "other/kept"])
            #expect(try store.readAll(key: "d/sub/kept") == Array("d/sub/kept".utf8))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aCutOffDiscardsOnlyIncompleteWritesLastActiveBeforeIt(kind: StoreKind) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            let store = fixture.store
            try store.put(key: "wal/kept", bytes: [1], ifAbsent: false)
            let writers = try ["wal/old", "wal/young"].map { try fixture.leaveIncompleteWrite($0) }
            defer { writers.forEach { $0.abort() } }
            // A local temporary file is aged by its modification time. An S3 upload's age is
            // its initiation, set by the server: there, both are young, and a cut-off in the
            // future stands for the time passing.
            try fixture.ageIncompleteWrite("wal/old", by: 2 * 3600)
            let ages = fixture.localRoot != nil

            let now = Date()
            let old = try store.discardIncompleteWrites(prefix: "wal/", olderThan: now.addingTimeInterval(-1800), dryRun: false)
            switch kind {
            case .memory:
                #expect(old.isEmpty)
            case .local, .encryptedLocal, .countedLocal, .s3, .encryptedS3:
                #expect(old.map(\.key) == (ages ? ["wal/old"] : []))
                #expect(old.allSatisfy { abs($0.modified.timeIntervalSince(now) + 2 * 3600) < 60 }, "\(old)")
                #expect(try fixture.rawIncompleteWrites() == (ages ? ["wal/young"] : ["wal/old", "wal/young"]))
            }
            let rest = try store.discardIncompleteWrites(prefix: "wal/", olderThan: now.addingTimeInterval(3600), dryRun: false)
            #expect(rest.map(\.key).sorted() == (kind == .memory ? [] : ages ? ["wal/young"] : ["wal/old", "wal/young"]))
            #expect(try fixture.rawIncompleteWrites().isEmpty)
            #expect(try store.listAll(prefix: "").map(\.key) == ["wal/kept"])
        }
    }

    @Test(arguments: StoreKind.allCases, [0, 1001])
    func aPageSizeOutsideOneToAThousandIsRefused(kind: StoreKind, pageSize: Int) async throws {
        try await offThePool {
            let fixture = try StoreFixture.make(kind)
            defer { fixture.close() }
            let error = #expect(throws: LifeboatError.self) { _ = try fixture.store.listPage(ListRequest(pageSize: pageSize)) }
            #expect(error?.code == .internalError)
        }
    }
}

/// What only the local store promises: file modes, and temporary files of writers.
@Suite
struct LocalStoreSpecifics {
    func mode(_ path: String) throws -> mode_t {
        var st = stat()
        guard lstat(path, &st) == 0 else { throw TestSupportError("lstat \(path): \(String(cString: strerror(errno)))") }
        return st.st_mode & 0o7777
    }

    @Test func objectsAre0600AndDirectories0700EvenUnderUmask022() async throws {
        try await offThePool {
            let directory = try TemporaryDirectory("lifeboat-store")
            defer { directory.remove() }
            // The umask is the process's; 022 is the usual one, under which the modes given to
            // open(2) and mkdir(2) of 0644 and 0755 would make a repository readable by everyone.
            let saved = umask(0o022)
            defer { umask(saved) }
            let root = directory.subpath("repository")
            let store = LocalStore(root: root)
            try writeObject(store, "pg/backups/1/data/0000.tar.zst", [1, 2, 3])
            try store.put(key: "pg/backups/1/manifest.json", bytes: [4], ifAbsent: true)
            try store.put(key: "lifeboat.json", bytes: [5], ifAbsent: false)
            try store.copy(from: "lifeboat.json", to: "copies/lifeboat.json")

            for file in ["pg/backups/1/data/0000.tar.zst", "pg/backups/1/manifest.json", "lifeboat.json", "copies/lifeboat.json"] {
                #expect(try mode(root + "/" + file) == 0o600, "\(file)")
            }
            for dir in ["", "/pg", "/pg/backups", "/pg/backups/1", "/pg/backups/1/data", "/copies"] {
                #expect(try mode(root + dir) == 0o700, "\(root + dir)")
            }
        }
    }

    @Test func discardingRemovesDirectoriesHoldingOnlyTemporaryFilesButNeverTheRoot() async throws {
        try await offThePool {
            let directory = try TemporaryDirectory("lifeboat-store")
            defer { directory.remove() }
            let root = directory.subpath("repository")
            let store = LocalStore(root: root)
            try store.put(key: "pg/backups/1/manifest.json", bytes: [1], ifAbsent: true)
            // A run killed while creating its reservation: a directory no listing shows.
            try directory.write("repository/pg/backups/2/.reservation.json.tmp-4242-abc", "partial")
            try directory.write("repository/pg/backups/1/.0000.tar.zst.tmp-4242-def", "partial")

            let found = try store.discardIncompleteWrites(prefix: "pg/backups/", olderThan: nil, dryRun: false)
            #expect(found.map(\.key).sorted() == ["pg/backups/1/0000.tar.zst", "pg/backups/2/reservation.json"])
            #expect(found.allSatisfy { $0.bytes == 7 })
            #expect(!FileManager.default.fileExists(atPath: root + "/pg/backups/2"))
            #expect(try filesUnder(root) == ["pg/backups/1/manifest.json"])

            // A root holding nothing but a temporary file stays, empty.
            try store.delete(keys: ["pg/backups/1/manifest.json"])
            try directory.write("repository/.lifeboat.json.tmp-4242-ghi", "partial")
            #expect(try store.discardIncompleteWrites(prefix: "", olderThan: nil, dryRun: false).map(\.key) == ["lifeboat.json"])
            #expect(isDirectory(root))
            #expect(try FileManager.default.contentsOfDirectory(atPath: root).isEmpty)
        }
    }

    @Test func aLeftoverTemporaryFileOfACrashedWriterIsNotListed() async throws {
        try await offThePool {
            let directory = try TemporaryDirectory("lifeboat-store")
            defer { directory.remove() }
            let store = LocalStore(root: directory.path)
            try store.put(key: "pg/backups/1/manifest.json", bytes: [1], ifAbsent: true)
            // What a writer that crashed before its commit leaves: its temporary file, alone in a
            // backup's directory, and beside a committed object.
            try directory.write("pg/backups/2/.manifest.json.tmp-4242-abc", "partial")
            try directory.write("pg/backups/1/.0000.tar.zst.tmp-4242-def", "partial")

            #expect(try store.listAll(prefix: "").map(\.key) == ["pg/backups/1/manifest.json"])
            let page = try store.listPage(ListRequest(prefix: "pg/backups/", delimiter: "/"))
            #expect(page.commonPrefixes == ["pg/backups/1/"])
            #expect(page.objects.isEmpty)
        }
    }
}
