import Foundation
import Testing
@testable import LifeboatCore

@Suite struct ClaimLivenessRules {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let local = ProcessIdentity(host: "db-1", pid: 100, processStart: 5, bootID: "boot-a")
    let timings = ClaimTimings(refreshInterval: 300, staleAfter: 1800)

    func evaluate(_ owner: ProcessIdentity, heartbeatAge: TimeInterval, runs: Bool) -> Liveness {
        ClaimLiveness.evaluate(owner: owner, heartbeat: now.addingTimeInterval(-heartbeatAge), now: now, timings: timings,
                               local: local) { _, _ in runs }
    }

    @Test func aRunningProcessOnThisMachineIsLiveWhateverItsHeartbeat() {
        let owner = ProcessIdentity(host: "db-1", pid: 42, processStart: 7, bootID: "boot-a")
        #expect(evaluate(owner, heartbeatAge: 3 * 3600, runs: true) == .live)
    }

    @Test func aProcessGoneFromThisMachineIsStaleAtOnce() {
        let owner = ProcessIdentity(host: "db-1", pid: 42, processStart: 7, bootID: "boot-a")
        #expect(evaluate(owner, heartbeatAge: 1, runs: false) == .stale("pid 42 on db-1 is no longer running"))
    }

    @Test func aProcessFromBeforeARestartIsStale() {
        let owner = ProcessIdentity(host: "db-1", pid: 42, processStart: 7, bootID: "boot-old")
        #expect(evaluate(owner, heartbeatAge: 1, runs: true).isStale)
    }

    @Test func anotherMachinesClaimIsStaleOnlyWhenItsHeartbeatIsOld() {
        let owner = ProcessIdentity(host: "db-2", pid: 42, processStart: 7, bootID: "boot-b")
        #expect(evaluate(owner, heartbeatAge: 1799, runs: false) == .live)
        #expect(evaluate(owner, heartbeatAge: 1801, runs: true).isStale)
    }

    @Test func sharedLocksGoTogetherAndExclusiveOnesWithNothing() {
        let owner = ProcessIdentity(host: "h", pid: 1)
        let shared = LockRecord(id: "a", kind: .shared, owner: owner, command: "backup p", created: now, heartbeat: now)
        let exclusive = LockRecord(id: "b", kind: .exclusive, owner: owner, command: "prune", created: now, heartbeat: now)
        #expect(!shared.conflicts(with: .shared))
        #expect(shared.conflicts(with: .exclusive))
        #expect(exclusive.conflicts(with: .shared))
        #expect(exclusive.conflicts(with: .exclusive))
    }
}

@Suite struct RepositoryAddresses {
    @Test func aPathIsALocalRepository() throws {
        let config = try RepositoryAddress.parse("backups/repo", s3: .init(), workingDirectory: "/srv", environment: [:])
        #expect(config.kind == .local(path: "/srv/backups/repo"))
    }

    @Test func anS3AddressNamesBucketAndPrefix() throws {
        let config = try RepositoryAddress.parse("s3://acme-dr/lifeboat/prod", s3: .init(endpoint: "http://minio:9000"),
                                                 workingDirectory: "/", environment: ["AWS_REGION": "eu-central-1"])
        guard case .s3(let s3) = config.kind else { Issue.record("not S3"); return }
        #expect(s3.bucket == "acme-dr")
        #expect(s3.prefix == "lifeboat/prod/")
        #expect(s3.endpoint == "http://minio:9000")
        #expect(s3.region == "eu-central-1")
    }

    @Test func anS3AddressWithoutAnEndpointIsBadInput() {
        #expect {
            try RepositoryAddress.parse("s3://acme-dr", s3: .init(), workingDirectory: "/", environment: [:])
        } throws: { error in
            (error as? LifeboatError)?.exitStatus == 2 && "\(error)".contains("--endpoint")
        }
    }
}

@Suite struct ManifestSourceRecords {
    struct Details: Codable, Equatable {
        var host: String
        var number: Int
        var taken: Date
    }

    @Test func aKindsRecordRoundTripsUnderItsOwnName() throws {
        let details = Details(host: "db", number: 150_008, taken: Date(timeIntervalSince1970: 1_800_000_000))
        let record = try SourceRecord(kind: "postgres", details: details)
        let json = String(decoding: try JSON.encode(record), as: UTF8.self)
        #expect(json.contains(#""kind" : "postgres""#))
        #expect(json.contains(#""postgres" : {"#))
        let decoded = try JSON.decode(SourceRecord.self, from: Data(json.utf8))
        #expect(try decoded.details(as: Details.self) == details)
    }

    @Test func aManifestOfAnUnknownKindStillReads() throws {
        let json = #"{"kind": "mirror", "mirror": {"buckets": ["a", "b"], "objects": 12, "ratio": 0.5, "ok": true, "none": null}}"#
        let record = try JSON.decode(SourceRecord.self, from: Data(json.utf8))
        #expect(record.kind == "mirror")
        #expect(record.details == .object(["buckets": .array([.string("a"), .string("b")]), "objects": .integer(12),
                                           "ratio": .number(0.5), "ok": .bool(true), "none": .null]))
    }
}
