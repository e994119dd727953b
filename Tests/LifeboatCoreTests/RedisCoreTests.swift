import Foundation
import LifeboatCore
import Testing

/// An RDB file saved by a real Redis 7.0.15 (see Fixtures/redis/README.md).
func sampleRDB() throws -> [UInt8] {
    let directory = Bundle.module.url(forResource: "Fixtures", withExtension: nil)
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    return Array(try Data(contentsOf: directory.appendingPathComponent("redis/dump-7.0.15.rdb")))
}

/// Runs bytes through an `RDBCheck` in pieces of `piece` bytes.
func checkRDB(_ bytes: [UInt8], piece: Int = 1 << 20) throws -> RDBCheck.Summary {
    var check = RDBCheck(what: "RDB file 'dump.rdb'", hint: "hint")
    var offset = 0
    while offset < bytes.count {
        let end = min(bytes.count, offset + piece)
        try check.update(Array(bytes[offset..<end]))
        offset = end
    }
    return try check.finish()
}

/// The message of the `LifeboatError` that `body` throws (nil when it does not throw).
func failureMessage(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch let error as LifeboatError {
        return error.message
    } catch {
        return "\(error)"
    }
}

@Suite struct RedisCRC64 {
    @Test func matchesRedisCheckValue() {
        // crc64.c's own test: crc64(0, "123456789", 9) == 0xe9c6d914c4b8d9ca.
        #expect(CRC64Jones.checksum(Array("123456789".utf8)) == 0xe9c6_d914_c4b8_d9ca)
        #expect(CRC64Jones.checksum([UInt8]()) == 0)
    }

    @Test func givesTheSameValueWhateverThePieces() throws {
        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
        let whole = CRC64Jones.checksum(bytes)
        for piece in [1, 3, 7, 8, 9, 64, 4095] {
            var crc = CRC64Jones()
            var offset = 0
            while offset < bytes.count {
                crc.update(bytes[offset..<min(bytes.count, offset + piece)])
                offset += piece
            }
            #expect(crc.value == whole, "pieces of \(piece)")
        }
    }
}

@Suite struct RedisRDBCheck {
    @Test func acceptsAFileRedisSavedAndReadsItsVersionAndChecksum() throws {
        let rdb = try sampleRDB()
        for piece in [1, 5, 8, 9, 17, 100, rdb.count] {
            let summary = try checkRDB(rdb, piece: piece)
            #expect(summary == RDBCheck.Summary(version: 10, size: Int64(rdb.count), checksum: 0xb926_506a_709d_3be9, checksumDisabled: false),
                    "pieces of \(piece)")
            #expect(summary.checksumHex == "b926506a709d3be9")
        }
    }

    @Test func refusesTheFileWithAnyOneByteFlipped() throws {
        let rdb = try sampleRDB()
        for offset in stride(from: 9, to: rdb.count, by: 7) {
            var damaged = rdb
            damaged[offset] ^= 0x20
            let message = failureMessage { _ = try checkRDB(damaged, piece: 64) }
            #expect(message != nil, "byte \(offset) flipped was accepted")
        }
        var damaged = rdb
        damaged[150] ^= 0x01
        #expect(failureMessage { _ = try checkRDB(damaged) }?.hasPrefix("RDB file 'dump.rdb' fails its CRC-64 check: the file holds b926506a709d3be9") == true)
    }

    @Test func refusesWhatIsNotAWholeRDBFile() throws {
        let rdb = try sampleRDB()
        #expect(failureMessage { _ = try checkRDB(Array("HELLO0010".utf8) + rdb.dropFirst(9)) }
            == "RDB file 'dump.rdb' is not an RDB file: it starts with 'HELLO0010', not 'REDIS' and a 4-digit version")
        #expect(failureMessage { _ = try checkRDB(Array("REDIS00x0".utf8)) }?.contains("not 'REDIS' and a 4-digit version") == true)
        #expect(failureMessage { _ = try checkRDB(Array(rdb.prefix(5))) } == "RDB file 'dump.rdb' is 5 bytes long, too short to be an RDB file (9 bytes of header)")
        // Cut short: the end-of-file opcode is not where the trailer says.
        #expect(failureMessage { _ = try checkRDB(Array(rdb.dropLast(20))) }?.contains("does not end with the RDB end-of-file marker") == true)
        #expect(failureMessage { _ = try checkRDB(Array(rdb.prefix(12))) }?.contains("too short for an RDB file of version 10") == true)
        #expect(failureMessage { _ = try checkRDB([]) }?.contains("0 bytes long") == true)
    }

    @Test func acceptsAFileSavedWithoutChecksumAndSaysSo() throws {
        let rdb = try sampleRDB()
        let summary = try checkRDB(Array(rdb.dropLast(8)) + [UInt8](repeating: 0, count: 8))
        #expect(summary.checksumDisabled && summary.checksum == nil && summary.version == 10)
    }

    @Test func filesOlderThanVersion5EndAtTheirMarker() throws {
        #expect(try checkRDB(Array("REDIS0004".utf8) + [0xfe, 0x00, 0xff]).version == 4)
        #expect(failureMessage { _ = try checkRDB(Array("REDIS0004".utf8) + [0xfe, 0x00]) }?.contains("end-of-file marker") == true)
    }
}

@Suite struct RedisProtocol {
    @Test func encodesCommandsAsArraysOfBulkStrings() {
        #expect(String(decoding: RESP.command(["INFO", "persistence"]), as: UTF8.self) == "*2\r\n$4\r\nINFO\r\n$11\r\npersistence\r\n")
        #expect(String(decoding: RESP.command(["SET", "k", ""]), as: UTF8.self) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n")
        #expect(RESP.command([[0, 13, 10]]) == Array("*1\r\n$3\r\n".utf8) + [0, 13, 10, 13, 10])
    }

    @Test func decodesEveryKindOfReply() throws {
        let cases: [(String, RESPValue)] = [
            ("+OK\r\n", .simple("OK")),
            ("-WRONGPASS invalid username-password pair\r\n", .error("WRONGPASS invalid username-password pair")),
            (":-42\r\n", .integer(-42)),
            ("$5\r\nhe\r\no\r\n", .bulk(Array("he\r\no".utf8))),
            ("$0\r\n\r\n", .bulk([])),
            ("$-1\r\n", .bulk(nil)),
            ("*-1\r\n", .array(nil)),
            ("*2\r\n$3\r\ndir\r\n$9\r\n/var/data\r\n", .array([.bulk(Array("dir".utf8)), .bulk(Array("/var/data".utf8))])),
            ("*2\r\n*1\r\n:1\r\n+x\r\n", .array([.array([.integer(1)]), .simple("x")])),
        ]
        for (text, expected) in cases {
            let bytes = Array(text.utf8)
            let decoded = try #require(try RESP.decode(bytes), "\(text)")
            #expect(decoded.value == expected)
            #expect(decoded.count == bytes.count)
            // Any shorter prefix is incomplete, never wrong.
            for cut in 0..<bytes.count { #expect(try RESP.decode(Array(bytes[0..<cut]))?.count == nil, "\(text) cut at \(cut)") }
        }
        #expect(RESPValue.error("NOPERM this user has no permissions").errorCode == "NOPERM")
        // A reply followed by the next one: only the first is taken.
        #expect(try RESP.decode(Array("+OK\r\n:1\r\n".utf8))?.count == 5)
    }

    @Test func refusesWhatIsNotRESP() {
        for text in ["HTTP/1.1 400 Bad Request\r\n", "+OK\n", ":x\r\n", "$3\r\nabcd\r\n", "$-2\r\n", "*-7\r\n",
                     "$\(RESP.maximumBulkLength + 1)\r\n"] {
            #expect(throws: RESP.ProtocolError.self, "\(text)") { _ = try RESP.decode(Array(text.utf8)) }
        }
        let deep = String(repeating: "*1\r\n", count: RESP.maximumDepth + 2) + ":1\r\n"
        #expect(throws: RESP.ProtocolError.self) { _ = try RESP.decode(Array(deep.utf8)) }
        #expect(throws: RESP.ProtocolError.self) {
            _ = try RESP.decode([UInt8](repeating: UInt8(ascii: "+"), count: RESP.maximumLineLength + 10))
        }
    }

    @Test func readsInfoFields() {
        let fields = RedisInfo.fields("# Persistence\r\nloading:0\r\nrdb_bgsave_in_progress:1\r\nrdb_last_bgsave_status:ok\r\n\r\n# Other\r\nx:a:b\r\n")
        #expect(fields == ["loading": "0", "rdb_bgsave_in_progress": "1", "rdb_last_bgsave_status": "ok", "x": "a:b"])
    }
}

@Suite struct RedisRDBTransfer {
    let mark = Array("0123456789abcdef0123456789abcdef01234567".utf8)

    @Test func readsTheLinesAMasterSendsBeforeThePayload() throws {
        #expect(try RDBTransferHeader.parse(line: []) == .keepalive)
        #expect(try RDBTransferHeader.parse(line: [13]) == .keepalive)
        #expect(try RDBTransferHeader.parse(line: Array("$295\r".utf8)) == .header(.length(295)))
        #expect(try RDBTransferHeader.parse(line: Array("$EOF:".utf8) + mark + [13]) == .header(.eofMark(mark)))
        #expect(try RDBTransferHeader.parse(line: Array("-NOPERM no sync for you\r".utf8)) == .error("NOPERM no sync for you"))
        for bad in ["$EOF:short", "$-1", "$12x", "+FULLRESYNC abc 0", "$"] {
            #expect(throws: RESP.ProtocolError.self, "\(bad)") { _ = try RDBTransferHeader.parse(line: Array(bad.utf8)) }
        }
    }

    /// Feeds `input` to a framer in pieces of `piece` bytes; what came out and whether it ended.
    func frame(_ header: RDBTransferHeader, _ input: [UInt8], piece: Int) -> (output: [UInt8], complete: Bool) {
        var framer = RDBPayloadFramer(header: header)
        var output: [UInt8] = []
        var offset = 0
        while offset < input.count, !framer.isComplete {
            let end = min(input.count, offset + min(piece, framer.readLimit(piece)))
            framer.feed(Array(input[offset..<end]), into: &output)
            offset = end
        }
        #expect(framer.delivered == Int64(output.count))
        return (output, framer.isComplete)
    }

    @Test func aDisklessPayloadEndsExactlyBeforeItsMark() throws {
        let rdb = try sampleRDB()
        for piece in [1, 7, 39, 40, 41, 64, 1000] {
            let result = frame(.eofMark(mark), rdb + mark, piece: piece)
            #expect(result.output == rdb, "pieces of \(piece)")
            #expect(result.complete)
            // Without its mark the payload is not complete, and the last 40 bytes are held back.
            let cut = frame(.eofMark(mark), rdb, piece: piece)
            #expect(!cut.complete && cut.output == Array(rdb.dropLast(40)))
        }
        // A payload shorter than the mark, and none at all.
        let short = frame(.eofMark(mark), [1, 2, 3] + mark, piece: 2)
        #expect(short.output == [1, 2, 3] && short.complete)
        let empty = frame(.eofMark(mark), mark, piece: 40)
        #expect(empty.output.isEmpty && empty.complete)
    }

    @Test func aPayloadWithALengthEndsThereAndNeverReadsPast() throws {
        let rdb = try sampleRDB()
        for piece in [1, 8, 100, 4096] {
            let result = frame(.length(Int64(rdb.count)), rdb + Array("*1\r\n$4\r\nPING\r\n".utf8), piece: piece)
            #expect(result.output == rdb && result.complete, "pieces of \(piece)")
        }
        var framer = RDBPayloadFramer(header: .length(10))
        #expect(framer.readLimit(64) == 10)
        var output: [UInt8] = []
        framer.feed([1, 2, 3, 4], into: &output)
        #expect(framer.readLimit(64) == 6 && !framer.isComplete)
        #expect(RDBPayloadFramer(header: .length(0)).isComplete)
    }
}
