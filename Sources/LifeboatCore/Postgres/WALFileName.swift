import Foundation

/// The files PostgreSQL's `archive_command` and `restore_command` handle, by name.
///
/// - a segment: `TTTTTTTTLLLLLLLLSSSSSSSS` (timeline, then the segment number split in a
///   "log" and a "seg" part of `0x100000000 / segment size` segments each);
/// - a partial segment (the end of an old timeline at a promotion): the same, `.partial`;
/// - a timeline history file: `TTTTTTTT.history`;
/// - a backup history file: `TTTTTTTTLLLLLLLLSSSSSSSS.OOOOOOOO.backup` (offset in the segment).
public enum WALFileName: Sendable, Hashable, CustomStringConvertible {
    case segment(WALSegment)
    case partial(WALSegment)
    case history(timeline: UInt32)
    case backupHistory(WALSegment, offset: UInt32)

    /// Parses a file name (no directory). `segmentSize` is the cluster's WAL segment size.
    public init?(_ name: String, segmentSize: UInt64) {
        func hex(_ text: Substring) -> UInt32? {
            guard text.count == 8, text.allSatisfy(\.isHexDigit), text.uppercased() == text else { return nil }
            return UInt32(text, radix: 16)
        }
        if name.count == 16, name.hasSuffix(".history"), let timeline = hex(name.prefix(8)), timeline > 0 {
            self = .history(timeline: timeline)
            return
        }
        guard name.count >= 24, let segment = WALSegment(name: String(name.prefix(24)), segmentSize: segmentSize) else { return nil }
        let rest = name.dropFirst(24)
        if rest.isEmpty {
            self = .segment(segment)
        } else if rest == ".partial" {
            self = .partial(segment)
        } else if rest.count == 16, rest.hasPrefix("."), rest.hasSuffix(".backup"), let offset = hex(rest.dropFirst().prefix(8)) {
            self = .backupHistory(segment, offset: offset)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .segment(let segment): return segment.name
        case .partial(let segment): return segment.name + ".partial"
        case .history(let timeline): return WALSegment.hex8(timeline) + ".history"
        case .backupHistory(let segment, let offset): return segment.name + "." + WALSegment.hex8(offset) + ".backup"
        }
    }

    /// The timeline the file belongs to.
    public var timeline: UInt32 {
        switch self {
        case .segment(let s), .partial(let s), .backupHistory(let s, _): return s.timeline
        case .history(let timeline): return timeline
        }
    }
}

/// One WAL segment: a timeline and a segment number, for a given segment size.
public struct WALSegment: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var timeline: UInt32
    /// The segment number: the LSN of its first byte divided by the segment size.
    public var number: UInt64
    public var segmentSize: UInt64

    /// PostgreSQL's sizes: a power of two from 1 MiB to 1 GiB (16 MiB by default).
    public static func isValidSize(_ size: UInt64) -> Bool {
        size >= 1 << 20 && size <= 1 << 30 && size & (size - 1) == 0
    }

    public static let defaultSize: UInt64 = 16 << 20

    public init(timeline: UInt32, number: UInt64, segmentSize: UInt64) {
        self.timeline = timeline
        self.number = number
        self.segmentSize = segmentSize
    }

    /// The segment holding `lsn` on `timeline`.
    public init(containing lsn: LSN, timeline: UInt32, segmentSize: UInt64) {
        self.init(timeline: timeline, number: lsn.value / segmentSize, segmentSize: segmentSize)
    }

    /// Parses a 24-character segment name; nil for anything else, and for a "seg" part beyond
    /// what this segment size allows.
    public init?(name: String, segmentSize: UInt64) {
        guard name.utf8.count == 24, Self.isValidSize(segmentSize),
              name.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x41...0x46).contains($0) })
        else { return nil }
        let utf8 = Array(name.utf8)
        func part(_ index: Int) -> UInt64 { UInt64(String(decoding: utf8[index * 8..<(index + 1) * 8], as: UTF8.self), radix: 16)! }
        let timeline = part(0), log = part(1), seg = part(2)
        let perLog = Self.segmentsPerLog(segmentSize)
        guard timeline > 0, seg < perLog else { return nil }
        self.init(timeline: UInt32(timeline), number: log * perLog + seg, segmentSize: segmentSize)
    }

    static func segmentsPerLog(_ segmentSize: UInt64) -> UInt64 { 0x1_0000_0000 / segmentSize }

    public var name: String {
        let perLog = Self.segmentsPerLog(segmentSize)
        return Self.hex8(timeline) + Self.hex8(UInt32(truncatingIfNeeded: number / perLog)) + Self.hex8(UInt32(truncatingIfNeeded: number % perLog))
    }

    public var description: String { name }

    /// The first 16 characters of the name (timeline and "log"): the repository groups
    /// segments by it, 4 GiB of WAL per group.
    public var group: String { String(name.prefix(16)) }

    /// The LSN of the segment's first byte.
    public var startLSN: LSN { LSN(number * segmentSize) }
    /// The LSN just past the segment's last byte.
    public var endLSN: LSN { LSN((number + 1) * segmentSize) }

    public var next: WALSegment { WALSegment(timeline: timeline, number: number + 1, segmentSize: segmentSize) }

    /// Every segment from the one holding `start` to the one holding the byte before `end`
    /// (an LSN at a segment's very start needs nothing of that segment), on one timeline.
    public static func range(from start: LSN, to end: LSN, timeline: UInt32, segmentSize: UInt64) -> [WALSegment] {
        let first = start.value / segmentSize
        let last = max(first, (max(end.value, 1) - 1) / segmentSize)
        return (first...last).map { WALSegment(timeline: timeline, number: $0, segmentSize: segmentSize) }
    }

    public static func < (lhs: WALSegment, rhs: WALSegment) -> Bool {
        (lhs.timeline, lhs.number) < (rhs.timeline, rhs.number)
    }

    static func hex8(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}

/// The long page header at the start of every WAL segment (`XLogLongPageHeaderData`): it
/// names the cluster the segment belongs to and the segment's size and position.
public struct WALSegmentHeader: Sendable, Equatable {
    public var magic: UInt16
    public var timeline: UInt32
    /// The LSN of the segment's first byte.
    public var pageAddress: LSN
    public var systemIdentifier: UInt64
    public var segmentSize: UInt32
    public var blockSize: UInt32

    /// Bytes needed to parse the header.
    public static let size = 40
    /// `XLP_LONG_HEADER` in `xlp_info`.
    static let longHeaderFlag: UInt16 = 0x0002

    /// Parses the first bytes of a segment (little-endian, as on every platform PostgreSQL
    /// builds for here). Nil when the bytes are not a long page header.
    public init?(_ bytes: some Collection<UInt8>) {
        let b = Array(bytes.prefix(Self.size))
        guard b.count == Self.size else { return nil }
        func u16(_ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * $1) } }
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * $1) } }
        let info = u16(2)
        guard info & Self.longHeaderFlag != 0 else { return nil }
        magic = u16(0)
        timeline = u32(4)
        pageAddress = LSN(u64(8))
        // xlp_rem_len (4 bytes) at 16, padding to 24.
        systemIdentifier = u64(24)
        segmentSize = u32(32)
        blockSize = u32(36)
        guard WALSegment.isValidSize(UInt64(segmentSize)), blockSize >= 1024, blockSize & (blockSize - 1) == 0 else { return nil }
    }
}

/// A timeline history file (`00000002.history`): for each earlier timeline, the LSN at which
/// the next one branched off it.
public struct TimelineHistory: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// The parent timeline.
        public var timeline: UInt32
        /// Where the parent timeline ended: WAL from here on belongs to the child.
        public var switchPoint: LSN
        public var reason: String
    }

    /// The timeline this history leads to.
    public var timeline: UInt32
    /// The ancestors, oldest first.
    public var entries: [Entry]

    /// Parses a history file's text; nil when a line is neither a comment nor an entry.
    public init?(timeline: UInt32, text: String) {
        self.timeline = timeline
        entries = []
        for line in text.split(whereSeparator: \.isNewline) {
            let trimmed = line.drop(while: \.isWhitespace)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(maxSplits: 2, whereSeparator: { $0 == "\t" || $0 == " " })
            guard fields.count >= 2, let parent = UInt32(fields[0]), let lsn = LSN(String(fields[1])) else { return nil }
            entries.append(Entry(timeline: parent, switchPoint: lsn,
                                 reason: fields.count > 2 ? String(fields[2]).trimmingCharacters(in: .whitespaces) : ""))
        }
    }

    /// The timeline that holds `lsn` along this history: the first ancestor whose switch point
    /// lies after it, else this history's own timeline.
    public func timeline(holding lsn: LSN) -> UInt32 {
        entries.first(where: { lsn < $0.switchPoint })?.timeline ?? timeline
    }
}
