import Foundation
import LifeboatCore
import Testing

@Suite struct RecoveryPlanning {
    let size = WALSegment.defaultSize
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    func at(_ minutes: Double) -> Date { t0.addingTimeInterval(minutes * 60) }

    /// A backup on `timeline` from segment `start` to inside segment `stop`, ending at minute `ended`.
    func backup(_ id: String, timeline: UInt32 = 1, start: UInt64, stop: UInt64, ended: Double) -> PhysicalBackupInfo {
        PhysicalBackupInfo(id: id, record: PhysicalBackupRecord(
            timeline: timeline, startLSN: LSN(start * size + 0x28), stopLSN: LSN(stop * size + 0x100),
            startTime: at(ended - 1), stopTime: at(ended), segmentSize: size, checkpoint: "fast", tablespaces: []))
    }

    /// Segments `numbers` of `timeline`, segment n archived at minute n.
    func wal(_ numbers: ClosedRange<UInt64>, timeline: UInt32 = 1, into inventory: inout WALInventory) {
        for n in numbers { inventory.add(WALSegment(timeline: timeline, number: n, segmentSize: size), archivedAt: at(Double(n))) }
    }

    @Test func timesParseAsOperatorsWriteThem() {
        let utc = TimeZone(identifier: "UTC")!
        #expect(RecoveryTarget.parseTime("2026-11-29 17:30:00", timeZone: utc) == Date(timeIntervalSince1970: 1_795_973_400))
        #expect(RecoveryTarget.parseTime("2026-11-29T18:30:00+01:00") == Date(timeIntervalSince1970: 1_795_973_400))
        #expect(RecoveryTarget.parseTime("2026-11-29 17:30:00.25Z") == Date(timeIntervalSince1970: 1_795_973_400.25))
        #expect(RecoveryTarget.parseTime("2026-11-29 17:30:00.123456+00") == Date(timeIntervalSince1970: 1_795_973_400.123456))
        for bad in ["2026-11-31 10:00:00Z", "2026-11-29", "yesterday", "2026-11-29 25:00:00Z", "2026-11-29 10:00:00 +01"] {
            #expect(RecoveryTarget.parseTime(bad) == nil, "\(bad)")
        }
        #expect(RecoveryTarget.format(Date(timeIntervalSince1970: 1_795_973_400.5)) == "2026-11-29 17:30:00.500000+00")
    }

    @Test func recoverySettingsAreQuotedForPostgreSQL() {
        let options = RecoveryOptions(target: .name("before 'the' upgrade"), action: .pause)
        let settings = options.settings(restoreCommand: "lifeboat wal-fetch pg %f %p")
        #expect(settings.map(\.key) == ["restore_command", "recovery_target_name", "recovery_target_action", "recovery_target_timeline"])
        #expect(settings[1].value == "'before ''the'' upgrade'")
        #expect(RecoveryOptions().settings(restoreCommand: "x").map(\.key) == ["restore_command", "recovery_target_timeline"],
                "recovering to the end of the WAL sets no target and so no action")
    }

    @Test func aTimeIsRecoveredFromTheNewestBackupThatEndsBeforeIt() throws {
        var inventory = WALInventory(segmentSize: size)
        wal(2...9, into: &inventory)
        let backups = [backup("a", start: 2, stop: 2, ended: 2.5), backup("b", start: 5, stop: 5, ended: 5.5)]
        let intervals = RecoveryPlanner.intervals(backups: backups, wal: inventory)
        #expect(intervals.count == 1)
        #expect(intervals.first?.backups == ["a", "b"])
        #expect(intervals.first?.toLSN == LSN(10 * size))
        #expect(try RecoveryPlanner.choose(target: .time(at(4)), timeline: .latest, backups: backups, explicit: nil, wal: inventory).backup.id == "a")
        #expect(try RecoveryPlanner.choose(target: .time(at(7)), timeline: .latest, backups: backups, explicit: nil, wal: inventory).backup.id == "b")
        #expect(try RecoveryPlanner.choose(target: .latest, timeline: .latest, backups: backups, explicit: nil, wal: inventory).backup.id == "b")
        #expect(try RecoveryPlanner.choose(target: .xid(1234), timeline: .latest, backups: backups, explicit: nil, wal: inventory).backup.id == "a",
                "a transaction's position is unknown: replay from the oldest backup that reaches the end")
    }

    @Test func targetsOutsideTheRangeAreRefusedAndTheRangeNamed() {
        var inventory = WALInventory(segmentSize: size)
        wal(2...6, into: &inventory)
        let backups = [backup("a", start: 2, stop: 3, ended: 3.5)]
        for target in [RecoveryTarget.time(at(1)), .time(at(60)), .lsn(LSN(100 * size))] {
            #expect {
                try RecoveryPlanner.choose(target: target, timeline: .latest, backups: backups, explicit: nil, wal: inventory)
            } throws: { error in
                let error = error as? LifeboatError
                return error?.exitStatus == 2 && error?.message.contains("outside the recoverable range") == true
                    && error?.message.contains("(0/7000000) on timeline 1") == true
            }
        }
    }

    @Test func aGapEndsTheRangeAndALaterBackupStartsANewOne() throws {
        var inventory = WALInventory(segmentSize: size)
        wal(2...4, into: &inventory)
        wal(6...9, into: &inventory)
        let backups = [backup("a", start: 2, stop: 2, ended: 2.5), backup("b", start: 7, stop: 7, ended: 7.5)]
        let intervals = RecoveryPlanner.intervals(backups: backups, wal: inventory)
        #expect(intervals.map(\.backups) == [["a"], ["b"]])
        #expect(intervals.first?.gapAt == "000000010000000000000005")
        #expect(intervals.first?.toLSN == LSN(5 * size))
        #expect(throws: LifeboatError.self) {
            try RecoveryPlanner.choose(target: .time(at(6)), timeline: .latest, backups: backups, explicit: nil, wal: inventory)
        }
        #expect(try RecoveryPlanner.choose(target: .time(at(8)), timeline: .latest, backups: backups, explicit: nil, wal: inventory).backup.id == "b")
    }

    @Test func aBackupWhoseOwnWALIsMissingIsNeverChosen() throws {
        var inventory = WALInventory(segmentSize: size)
        wal(2...3, into: &inventory)
        wal(5...6, into: &inventory)
        let backups = [backup("a", start: 2, stop: 2, ended: 2.5), backup("b", start: 4, stop: 5, ended: 5.5)]
        #expect(try RecoveryPlanner.choose(target: .latest, timeline: .latest, backups: backups, explicit: nil, wal: inventory).backup.id == "a")
        #expect {
            try RecoveryPlanner.choose(target: .immediate, timeline: .latest, backups: backups, explicit: "b", wal: inventory)
        } throws: { ($0 as? LifeboatError)?.message.contains("segment 000000010000000000000004 it needs is not archived") == true }
    }

    @Test func latestFollowsTheNewestTimelineThatDescendsFromTheBackup() throws {
        var inventory = WALInventory(segmentSize: size)
        wal(2...5, into: &inventory)
        // Timeline 2 branched off timeline 1 inside segment 4; its copy of segment 4 and later ones exist.
        inventory.histories[2] = TimelineHistory(timeline: 2, text: "1\t0/4000500\tno recovery target specified\n")
        wal(4...8, timeline: 2, into: &inventory)
        // Timeline 3 branched off timeline 1 at segment 1, before the backup: not reachable from it.
        inventory.histories[3] = TimelineHistory(timeline: 3, text: "1\t0/1000000\tbefore the backup\n")
        wal(1...9, timeline: 3, into: &inventory)
        let backups = [backup("a", start: 2, stop: 2, ended: 2.5)]
        let choice = try RecoveryPlanner.choose(target: .latest, timeline: .latest, backups: backups, explicit: nil, wal: inventory)
        #expect(choice.timeline == 2)
        #expect(choice.interval.toLSN == LSN(9 * size))
        let current = try RecoveryPlanner.choose(target: .latest, timeline: .current, backups: backups, explicit: nil, wal: inventory)
        #expect(current.timeline == 1 && current.interval.toLSN == LSN(6 * size))
        #expect(throws: LifeboatError.self) {
            try RecoveryPlanner.choose(target: .latest, timeline: .number(3), backups: backups, explicit: nil, wal: inventory)
        }
    }

    @Test func aTablespaceRecordNamesItsPartsAndStillReadsTheOneArtifactOfOlderBackups() throws {
        let record = TablespaceRecord(oid: 16_390, location: "/srv/cold", artifacts: ["data/0000.tar.zst", "data/0001.tar.zst"])
        let encoded = try JSONEncoder().encode(record)
        #expect(try JSONDecoder().decode(TablespaceRecord.self, from: encoded) == record)
        #expect(String(decoding: encoded, as: UTF8.self).contains("\"artifacts\""))
        let older = #"{"oid": 16390, "location": "/srv/cold", "artifact": "data/0000.tar.zst"}"#
        #expect(try JSONDecoder().decode(TablespaceRecord.self, from: Data(older.utf8)).artifacts == ["data/0000.tar.zst"])
        let neither = #"{"oid": 16390, "location": "/srv/cold"}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(TablespaceRecord.self, from: Data(neither.utf8)) }
    }
}
