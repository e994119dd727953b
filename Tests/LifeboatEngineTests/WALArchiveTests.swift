import Foundation
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Testing
import TestSupport

/// A WAL segment's bytes: a long page header naming `systemIdentifier`, then a pattern.
func fakeSegment(_ segment: WALSegment, systemIdentifier: UInt64, fill: UInt8 = 0x5A) -> [UInt8] {
    var bytes = [UInt8](repeating: fill, count: Int(segment.segmentSize))
    func put(_ value: UInt64, at offset: Int, width: Int) {
        for i in 0..<width { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }
    put(0xD110, at: 0, width: 2)  // magic (PostgreSQL 15)
    put(0x0002, at: 2, width: 2)  // XLP_LONG_HEADER
    put(UInt64(segment.timeline), at: 4, width: 4)
    put(segment.startLSN.value, at: 8, width: 8)
    put(0, at: 16, width: 8)
    put(systemIdentifier, at: 24, width: 8)
    put(segment.segmentSize, at: 32, width: 4)
    put(8192, at: 36, width: 4)
    return bytes
}

@Suite struct WALArchiveOnAStore {
    let size: UInt64 = 1 << 20  // the smallest segment PostgreSQL allows: fast tests
    let systemIdentifier: UInt64 = 7_301_234_567_890_123_456
    let now = Date(timeIntervalSince1970: 1_795_000_000)

    func archive(_ store: MemoryStore) -> WALArchive {
        WALArchive(repository: Repository(name: "mem", store: store), policy: "pg", context: RunContext(logger: quietLogger))
    }

    @Test func aPushedSegmentComesBackVerifiedAndIsListed() throws {
        let store = MemoryStore(clock: { [now] in now })
        let wal = archive(store)
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let segment = WALSegment(timeline: 1, number: 3, segmentSize: size)
        let bytes = fakeSegment(segment, systemIdentifier: systemIdentifier)
        let path = try scratch.write("pg_wal/" + segment.name, bytes: bytes)

        #expect(try wal.readRecord() == nil)
        let record = try wal.record(forCluster: systemIdentifier, segmentSize: size)
        #expect(record.systemIdentifier == String(systemIdentifier) && record.segmentSize == size)
        // The first push marks the repository's format, as a first backup does.
        #expect(try store.stat(key: Repository.formatKey) != nil)
        let result = try wal.push(path: path, as: .segment(segment), systemIdentifier: systemIdentifier, record: record)
        guard case .archived(let pushedSize, let sha256, let stored) = result else {
            Issue.record("expected a new object, got \(result)")
            return
        }
        #expect(pushedSize == Int64(size) && sha256.count == 64 && stored < pushedSize)
        #expect(try store.stat(key: "pg/wal/0000000100000000/000000010000000000000003.tar.zst") != nil)
        #expect(try wal.isArchived(.segment(segment)))
        #expect(try !wal.isArchived(.segment(segment.next)))

        #expect(try wal.fetch(.segment(segment), to: scratch.path + "/RECOVERYXLOG"))
        #expect(try scratch.read("RECOVERYXLOG") == bytes)
        #expect(try !wal.fetch(.segment(segment.next), to: scratch.path + "/missing"))
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/missing"))
        try wal.verify(.segment(segment))

        // The same bytes again: success without a second object; other bytes: refused, kept.
        #expect(try wal.push(path: path, as: .segment(segment), systemIdentifier: systemIdentifier, record: record)
            == .alreadyArchived(size: Int64(size), sha256: sha256))
        var other = bytes
        other[5000] ^= 0xFF
        try scratch.write("pg_wal/" + segment.name, bytes: other)
        let refused = #expect(throws: LifeboatError.self) {
            try wal.push(path: path, as: .segment(segment), systemIdentifier: systemIdentifier, record: record)
        }
        #expect(refused?.code == .alreadyExists)
        #expect(refused?.message.contains("0000000100000000/000000010000000000000003.tar.zst") == true)
        #expect(refused?.message.contains(sha256) == true)
        #expect(try wal.fetch(.segment(segment), to: scratch.path + "/again"))
        #expect(try scratch.read("again") == bytes)

        // A history file, grouped apart.
        let history = Array("1\t0/3000000\tno recovery target specified\n".utf8)
        let historyPath = try scratch.write("pg_wal/00000002.history", bytes: history)
        _ = try wal.push(path: historyPath, as: .history(timeline: 2), systemIdentifier: systemIdentifier, record: record)
        #expect(try store.stat(key: "pg/wal/history/00000002.history.tar.zst") != nil)
        #expect(try wal.fetch(.history(timeline: 2), to: scratch.path + "/history"))
        #expect(try scratch.read("history") == history)

        var listed: [String] = []
        try wal.forEachArchived { file, info in
            listed.append("\(file) \(info.size > 0)")
            return true
        }
        #expect(listed == ["000000010000000000000003 true", "00000002.history true"])
    }

    @Test func anotherClustersSegmentsAndArchivesAreRefused() throws {
        let store = MemoryStore(clock: { [now] in now })
        let wal = archive(store)
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let record = try wal.record(forCluster: systemIdentifier, segmentSize: size)
        // Another cluster using the archive.
        let refused = #expect(throws: LifeboatError.self) { try wal.record(forCluster: 42, segmentSize: size) }
        #expect(refused?.message.contains("42") == true && refused?.message.contains(String(systemIdentifier)) == true)
        #expect(refused?.exitStatus == 1)
        // A segment whose header names another cluster than pg_control.
        let segment = WALSegment(timeline: 1, number: 7, segmentSize: size)
        let path = try scratch.write(segment.name, bytes: fakeSegment(segment, systemIdentifier: 42))
        let foreign = #expect(throws: LifeboatError.self) {
            try wal.push(path: path, as: .segment(segment), systemIdentifier: systemIdentifier, record: record)
        }
        #expect(foreign?.message.contains("system identifier 42") == true)
        // A segment renamed: its header starts elsewhere.
        try scratch.write(segment.name, bytes: fakeSegment(segment.next, systemIdentifier: systemIdentifier))
        #expect(throws: LifeboatError.self) {
            try wal.push(path: path, as: .segment(segment), systemIdentifier: systemIdentifier, record: record)
        }
        #expect(try !wal.isArchived(.segment(segment)))
    }

    @Test func aDamagedObjectIsAnErrorNamingIt() throws {
        let store = MemoryStore(clock: { [now] in now })
        let wal = archive(store)
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let record = try wal.record(forCluster: systemIdentifier, segmentSize: size)
        let segment = WALSegment(timeline: 1, number: 9, segmentSize: size)
        let path = try scratch.write(segment.name, bytes: fakeSegment(segment, systemIdentifier: systemIdentifier))
        _ = try wal.push(path: path, as: .segment(segment), systemIdentifier: systemIdentifier, record: record)

        // Replace the object with one whose checksum entry disagrees with its file.
        let key = wal.key(for: .segment(segment))
        let other = WALSegment(timeline: 1, number: 10, segmentSize: size)
        let otherPath = try scratch.write(other.name, bytes: fakeSegment(other, systemIdentifier: systemIdentifier))
        _ = try wal.push(path: otherPath, as: .segment(other), systemIdentifier: systemIdentifier, record: record)
        try store.copy(from: wal.key(for: .segment(other)), to: key)
        let damaged = #expect(throws: LifeboatError.self) { try wal.verify(.segment(segment)) }
        #expect(damaged?.code == .integrity)
        #expect(damaged?.message.contains(key) == true)
        #expect(throws: LifeboatError.self) { try wal.fetch(.segment(segment), to: scratch.path + "/out") }
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/out"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).allSatisfy { !$0.hasSuffix(".tmp") })
    }
}

@Suite struct WALConfiguration {
    @Test func onlyTheMainFileAndThePolicysOwnFileAreRead() throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        try scratch.write("lifeboat.yaml", "repositories:\n  local: { path: repo }\ndefault_repository: local\n")
        try scratch.write("policies/pg.yml", "policy: pg\nsource:\n  postgres: { conninfo: \"host=db\", wal: { push_parallel: 3 } }\n")
        try scratch.write("policies/broken.yaml", "policy: broken\nsource: [\n")
        try scratch.write("runbooks/broken.yaml", "runbook: broken\nsteps: {{\n")
        let configuration = try ConfigurationLoader.load(directory: scratch.path, environment: [:], onlyPolicy: "pg")
        #expect(configuration.problems.isEmpty)
        #expect(configuration.policyFiles.keys.sorted() == ["pg"])
        let policy = try configuration.policy(named: "pg")
        #expect((policy.source as? PostgresConfiguration)?.wal.pushParallel == 3)
        // The whole directory has the problems that must not matter here.
        #expect(try !ConfigurationLoader.load(directory: scratch.path, environment: [:]).problems.isEmpty)

        let missing = #expect(throws: LifeboatError.self) {
            try ConfigurationLoader.load(directory: scratch.path, environment: [:], onlyPolicy: "absent")
        }
        #expect(missing?.code == .notFound)
        #expect(throws: LifeboatError.self) { try ConfigurationLoader.load(directory: scratch.path, environment: [:], onlyPolicy: "../etc") }
    }
}

@Suite struct KilledFetchLeftovers {
    @Test func onlyTheTemporaryFilesOfProcessesThatAreGoneAreRemoved() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        // A process that has ended: its pid is free (the test runs in moments).
        let ended = Process()
        ended.executableURL = URL(fileURLWithPath: "/bin/true")
        try ended.run()
        ended.waitUntilExit()
        let gone = ended.processIdentifier
        let names = [".RECOVERYXLOG.\(gone).1.tmp",                  // a killed fetch's: removed
                     ".RECOVERYXLOG.\(getpid()).7.tmp",               // a running process's: kept
                     ".RECOVERYXLOG.tmp", ".RECOVERYXLOG.x.1.tmp",     // not ours: kept
                     ".00000001000000000000000A.\(gone).1.tmp",       // another file's: kept
                     "RECOVERYXLOG"]
        for name in names { try dir.write(name, "x") }
        let removed = LocalFile.removeStaleTemporaries(beside: dir.subpath("RECOVERYXLOG"))
        #expect(removed == [".RECOVERYXLOG.\(gone).1.tmp"])
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(left == names.dropFirst().sorted())
    }
}
