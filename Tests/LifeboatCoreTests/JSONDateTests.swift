import Foundation
import LifeboatCore
import Testing

/// Times in Lifeboat's JSON (manifests, history, `--json`) keep their fraction to the
/// microsecond: PostgreSQL's clock has microseconds, and a point-in-time restore compares a
/// base backup's consistency time with a target that may lie in the same second.
@Suite(.timeLimit(.minutes(10)))
struct JSONDates {
    @Test func aTimeKeepsItsMicrosecondsThroughTheJSON() throws {
        struct Record: Codable, Equatable { var at: Date }
        let at = Date(timeIntervalSince1970: 1_796_022_838.006299)
        let text = String(decoding: try JSON.encode(Record(at: at)), as: UTF8.self)
        #expect(text.contains("\"2026-11-30T07:13:58.006299Z\""), "\(text)")
        let back = try JSON.decode(Record.self, from: Data(text.utf8)).at
        #expect(abs(back.timeIntervalSince(at)) < 0.000001)
        #expect(JSON.formatDate(back) == "2026-11-30T07:13:58.006299Z")
        // A whole second is written as before, with no fraction.
        #expect(JSON.formatDate(Date(timeIntervalSince1970: 1_796_022_838)) == "2026-11-30T07:13:58Z")
        #expect(try JSON.line(Record(at: at)).contains("2026-11-30T07:13:58.006299Z"))
    }

    /// The defect: a base backup consistent at .9 of a second was written as consistent at
    /// the second itself, so a restore to .5 of it chose that backup, which cannot reach it.
    @Test func aBackupConsistentLateInASecondStaysAfterATargetEarlierInIt() throws {
        let record = PhysicalBackupRecord(timeline: 1, startLSN: LSN(0x7000028), stopLSN: LSN(0x7000100),
                                          startTime: Date(timeIntervalSince1970: 1_796_022_838.100),
                                          stopTime: Date(timeIntervalSince1970: 1_796_022_838.900), segmentSize: 16 << 20,
                                          checkpoint: "fast", tablespaces: [])
        let back = try JSON.decode(PhysicalBackupRecord.self, from: try JSON.encode(record))
        let target = Date(timeIntervalSince1970: 1_796_022_838.500)
        #expect(back.stopTime > target)
        #expect(back.startTime < target)
    }

    @Test func timesWrittenByEarlierVersionsAndOtherToolsStillRead() {
        #expect(JSON.parseDate("2026-11-30T07:13:58Z") == Date(timeIntervalSince1970: 1_796_022_838))
        #expect(JSON.parseDate("2026-11-30T08:13:58+01:00") == Date(timeIntervalSince1970: 1_796_022_838))
        #expect(JSON.parseDate("2026-11-30T07:13:58.5Z") == Date(timeIntervalSince1970: 1_796_022_838.5))
        for bad in ["", "2026-11-30", "2026-11-30T07:13:58", "2026-13-30T07:13:58Z", "2026-11-30T07:13:58.Z",
                    "2026-11-30T07:13:58Zx", "2026-11-30 07:13:58Z", "2026-11-30T07:13:58+0100"] {
            #expect(JSON.parseDate(bad) == nil, "\(bad)")
        }
    }
}
