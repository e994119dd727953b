import LifeboatCore
import Testing

@Suite struct WALNames {
    let size = WALSegment.defaultSize

    @Test func lsnsReadAndPrintAsPostgreSQLDoes() {
        #expect(LSN("16/B374D848")?.value == 0x16_B374_D848)
        #expect(LSN("0/0")?.description == "0/0")
        #expect(LSN(0x1_0000_0028).description == "1/28")
        for bad in ["", "16", "16/", "/1", "G/1", "1/2/3", "123456789/0"] { #expect(LSN(bad) == nil, "\(bad)") }
    }

    @Test func segmentNamesRoundTripAndFollowEachOther() throws {
        let segment = try #require(WALSegment(name: "0000000100000000000000FF", segmentSize: size))
        #expect(segment.number == 0xFF && segment.timeline == 1)
        #expect(segment.next.name == "000000010000000100000000")
        #expect(segment.group == "0000000100000000")
        #expect(WALSegment(containing: LSN("1/3000028")!, timeline: 2, segmentSize: size).name == "000000020000000100000003")
        // A "seg" part beyond 0xFF does not exist with 16 MiB segments; with 1 MiB ones it does.
        #expect(WALSegment(name: "000000010000000000000100", segmentSize: size) == nil)
        #expect(WALSegment(name: "000000010000000000000100", segmentSize: 1 << 20)?.number == 0x100)
        #expect(WALSegment(name: "00000000000000000000000A", segmentSize: size) == nil, "timeline 0 does not exist")
        #expect(WALSegment(name: "0000000100000000000000ff", segmentSize: size) == nil, "PostgreSQL writes upper case")
    }

    @Test func aBackupNeedsEverySegmentFromItsStartToItsStop() {
        let names = WALSegment.range(from: LSN("0/2000028")!, to: LSN("0/4000138")!, timeline: 1, segmentSize: size).map(\.name)
        #expect(names == ["000000010000000000000002", "000000010000000000000003", "000000010000000000000004"])
        // A stop exactly at a segment's start needs nothing of that segment.
        #expect(WALSegment.range(from: LSN("0/2000028")!, to: LSN("0/3000000")!, timeline: 1, segmentSize: size).count == 1)
    }

    @Test func everyKindOfArchivedFileIsRecognised() {
        #expect(WALFileName("000000010000000000000003", segmentSize: size)?.description == "000000010000000000000003")
        #expect(WALFileName("00000002.history", segmentSize: size) == .history(timeline: 2))
        guard case .partial = WALFileName("000000010000000000000003.partial", segmentSize: size) else { Issue.record("partial"); return }
        guard case .backupHistory(_, let offset) = WALFileName("000000010000000000000003.00000028.backup", segmentSize: size) else {
            Issue.record("backup history"); return
        }
        #expect(offset == 0x28)
        for bad in ["RECOVERYXLOG", "00000001.history.x", "0000000100000000000000031", "../00000001.history", "00000000.history"] {
            #expect(WALFileName(bad, segmentSize: size) == nil, "\(bad)")
        }
    }

    @Test func repositoryKeysComeFromTheNameAlone() {
        let segment = WALFileName("000000010000000A00000003", segmentSize: size)!
        #expect(WALArchiveLayout.key(policy: "pg", file: segment) == "pg/wal/000000010000000A/000000010000000A00000003.tar.zst")
        #expect(WALArchiveLayout.key(policy: "pg", file: .history(timeline: 3)) == "pg/wal/history/00000003.history.tar.zst")
    }

    @Test func theLongPageHeaderNamesTheCluster() throws {
        var bytes = [UInt8](repeating: 0, count: 40)
        func put(_ value: UInt64, at offset: Int, width: Int) { for i in 0..<width { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) } }
        put(0xD110, at: 0, width: 2)          // magic (PostgreSQL 15)
        put(0x0002 | 0x0004, at: 2, width: 2) // XLP_LONG_HEADER | XLP_BKP_REMOVABLE
        put(1, at: 4, width: 4)
        put(0x3000000, at: 8, width: 8)
        put(7_312_345_678_901_234_567, at: 24, width: 8)
        put(16 << 20, at: 32, width: 4)
        put(8192, at: 36, width: 4)
        let header = try #require(WALSegmentHeader(bytes))
        #expect(header.systemIdentifier == 7_312_345_678_901_234_567)
        #expect(header.pageAddress == LSN("0/3000000"))
        #expect(header.segmentSize == 16 << 20 && header.blockSize == 8192 && header.timeline == 1)
        bytes[2] = 0
        #expect(WALSegmentHeader(bytes) == nil, "a short page header is not the start of a segment")
    }

    @Test func timelineHistoryTellsWhichTimelineHoldsAPosition() throws {
        let history = try #require(TimelineHistory(timeline: 3, text: "1\t0/3000000\tno recovery target specified\n\n2\t0/50000A0\tbefore 2026-11-29\n"))
        #expect(history.entries.map(\.timeline) == [1, 2])
        #expect(history.timeline(holding: LSN("0/100")!) == 1)
        #expect(history.timeline(holding: LSN("0/3000000")!) == 2, "the switch point is the first byte of the child")
        #expect(history.timeline(holding: LSN("0/50000A0")!) == 3)
        #expect(TimelineHistory(timeline: 2, text: "x y\n") == nil)
    }
}
