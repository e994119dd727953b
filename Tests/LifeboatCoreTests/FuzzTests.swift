import Foundation
import LifeboatCore
import TestSupport
import Testing

/// Generative fuzzing of the parsers that read what another party wrote: configuration and
/// runbooks, manifests, mirror snapshot listings, S3's XML, RESP replies, the RDB transfer and
/// file checks. Each input, a mutation of a valid document made by the real writer, must parse
/// or be refused with the parser's error — no crash (it would kill this process), no input
/// slower than `Fuzz.run`'s time limit. Inputs that declare huge lengths are refused before
/// anything is allocated for them (the explicit cases at the end of each suite).
///
/// `LIFEBOAT_FUZZ_ITERATIONS=100000 swift test --filter Fuzz` runs longer; each run prints its
/// seed (`LIFEBOAT_FUZZ_SEED=<seed>` replays it, `random` draws one).
@Suite(.serialized) struct Fuzzing {
    /// The repository's own configuration, as shipped.
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func shipped(_ relative: String) throws -> String {
        try String(contentsOf: repositoryRoot.appendingPathComponent(relative), encoding: .utf8)
    }

    static let yamlTokens: [[UInt8]] = [
        ": ", "- ", "{", "}", "[", "]", ", ", "&a ", "*a", "<<: *a", "!!binary ", "!!map ", "!!str ", "? ", "|\n", ">-\n",
        "\n  ", "\n    - ", "\t", "---\n", "...\n", "#", "'", "\"", "\\u0000", "${", "${HOME}", "${X:-y}", "}", "$$",
        "~", "null", "true", "0x7fffffffffffffff", "1e999", "-.inf", ".nan", "30d", "10m", "0s", "* * * * *",
        "source:", "repository:", "schedule:", "retention:", "steps:", "restore:", "parallel:", "when:", "timeout:",
        "retry:", "health:", "run:", "target:", "variables:", "policy:", "runbook:", "repositories:", "s3:", "path:",
        "keep_last:", "recovery_window:", "cron:", "timezone:", "jitter:", "Europe/Paris", "id:", "critical:",
    ].map { Array($0.utf8) }

    static func configurationAccepted(_ configuration: Configuration) -> Bool {
        // Never throws; every problem says something.
        configuration.problems.allSatisfy { !$0.error.description.isEmpty }
    }

    @Test func configurationFilesNeverCrashTheParser() throws {
        let main = try Self.shipped("lifeboat.yaml")
        let policies = try ["hub-postgres", "lifeboat-config"].map { try Self.shipped("policies/\($0).yaml") }
        let runbook = try Self.shipped("runbooks/platform-recovery.yaml")
        let seeds = ([main, runbook] + policies).map { Array($0.utf8) }
        let report = Fuzz.run("configuration", seeds: seeds, dictionary: Self.yamlTokens, iterations: 120,
                              accept: { _ in false }) { input in
            let text = String(decoding: input, as: UTF8.self)
            // The same text as lifeboat.yaml, as a policy and as a runbook (beside the real files).
            for (index, files) in [
                (main: text, policies: policies, runbooks: [runbook]),
                (main: main, policies: [text] + policies.dropFirst(), runbooks: [runbook]),
                (main: main, policies: policies, runbooks: [text]),
            ].enumerated() {
                let configuration = ConfigurationParser.parse(
                    directory: "/etc/lifeboat", main: ConfigFile(name: "lifeboat.yaml", text: files.main),
                    policies: files.policies.enumerated().map { ConfigFile(name: "policies/p\($0.offset).yaml", text: $0.element) },
                    runbooks: files.runbooks.map { ConfigFile(name: "runbooks/r.yaml", text: $0) },
                    sources: [], environment: ["HOME": "/root", "X": String(repeating: "${X}", count: 4)])
                if !Self.configurationAccepted(configuration) {
                    throw FuzzFinding("a problem without a message (as file \(index))")
                }
            }
        }
        #expect(report.failures.isEmpty, "\(report)")
    }

    /// YAML's aliases let a few lines stand for a huge tree; deep nesting for a deep stack.
    enum HostileYAML: String, CaseIterable, Sendable {
        case aliasBomb, deepSequences, deepMappings, manyInterpolations

        var text: String {
            switch self {
            case .aliasBomb:
                var text = "a: &a [x, x, x, x, x, x, x, x]\n"
                var previous = "a"
                for name in ["b", "c", "d", "e", "f", "g", "h"] {
                    text += "\(name): &\(name) [" + Array(repeating: "*\(previous)", count: 8).joined(separator: ", ") + "]\n"
                    previous = name
                }
                return text + "repositories: &r [" + Array(repeating: "*h", count: 8).joined(separator: ", ") + "]\nstate_dir: *h\n"
            case .deepSequences: return "repositories: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + "\n"
            case .deepMappings: return "repositories: " + String(repeating: "{a: ", count: 5000) + "1" + String(repeating: "}", count: 5000) + "\n"
            case .manyInterpolations: return "state_dir: " + String(repeating: "${A}", count: 10_000) + "\n"
            }
        }
    }

    @Test(arguments: HostileYAML.allCases)
    func hostileYAMLIsRefusedQuickly(_ hostile: HostileYAML) {
        let text = hostile.text
        let clock = ContinuousClock()
        var configuration: Configuration?
        let elapsed = clock.measure {
            for name in ["lifeboat.yaml", "policies/p.yaml", "runbooks/r.yaml"] {
                let file = ConfigFile(name: name, text: text)
                configuration = ConfigurationParser.parse(
                    directory: "/etc/lifeboat", main: name == "lifeboat.yaml" ? file : nil,
                    policies: name.hasPrefix("policies") ? [file] : [], runbooks: name.hasPrefix("runbooks") ? [file] : [],
                    sources: [], environment: ["A": String(repeating: "a", count: 100)])
            }
        }
        #expect(elapsed < .seconds(2))
        #expect(configuration.map(Self.configurationAccepted) == true)
    }

    // MARK: Manifests

    static func manifestSeed() throws -> [UInt8] {
        let entries = [
            EntryRecord(path: "data/a.txt", kind: .file, size: 3, sha256: String(repeating: "ab", count: 32), mode: 0o644,
                        modificationTime: 1_700_000_000, uid: 1000, gid: 1000, user: "ann", group: "staff"),
            EntryRecord(path: "data/\u{FFFD}", pathBytes: "/w==", kind: .symlink, size: 0, sha256: "00", linkTarget: "a.txt"),
            EntryRecord(path: "dev/null", kind: .characterDevice, size: 0, sha256: "00", deviceMajor: 1, deviceMinor: 3),
            EntryRecord(path: "sparse", kind: .file, size: 1 << 30, sha256: "00", sparseMap: [DataRegion(offset: 4096, length: 10)]),
            EntryRecord(path: "stream.0000", kind: .file, size: 10, sha256: "00", stream: "dump", chunk: 0),
        ]
        let manifest = Manifest(
            policy: "hub-postgres", id: "20261130T030000.123Z-abcde",
            source: SourceRecord(kind: "postgres", details: .object([
                "cluster": .string("main"), "lsn": .array([.integer(1), .number(2.5), .bool(true), .null]),
            ])),
            startedAt: Date(timeIntervalSince1970: 1_764_000_000), finishedAt: Date(timeIntervalSince1970: 1_764_000_100),
            tool: ToolRecord(version: "1.0"),
            artifacts: [ArtifactRecord(path: "data/0001.tar.zst", role: "files", size: 4096, sha256: String(repeating: "cd", count: 32),
                                       compression: .zstd, entries: entries)])
        return [UInt8](try JSON.encode(manifest))
    }

    static let jsonTokens: [[UInt8]] = [
        "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\ud800", "\\udc00", "null", "true", "false", "-0", "1e400",
        "-9223372036854775809", "\"kind\"", "\"format\"", "\"entries\"", "\"sparseMap\"", "\"chunk\"", "\"size\"",
        "\"pathBytes\"", "[[[[[[[[", "{\"a\":{\"a\":{\"a\":",
    ].map { Array($0.utf8) }

    @Test func manifestJSONIsParsedOrRefused() throws {
        // Both the sealed document and its bare JSON: most changes to a sealed one stop at the
        // seal, and the decoder behind it must hold up too.
        let seeds = [try Self.manifestSeed(), try ManifestDocument.encode(try JSON.decode(Manifest.self, from: Data(try Self.manifestSeed())))]
        let report = Fuzz.run("manifest", seeds: seeds, dictionary: Self.jsonTokens, iterations: 2000,
                              accept: { $0 is ManifestDocument.Problem }) { input in
            let manifest = try ManifestDocument.decode(input)
            // What every reader of a manifest computes.
            _ = (manifest.storedBytes, manifest.artifacts.flatMap(\.entries).map { ($0.rawPath, $0.rawLinkTarget) })
        }
        #expect(report.failures.isEmpty, "\(report)")
    }

    enum DeepJSON: String, CaseIterable, Sendable {
        case arrays, arraysInASourceRecord, objectsInASourceRecord

        var text: String {
            let depth = 100_000
            switch self {
            case .arrays: return String(repeating: "[", count: depth)
            case .arraysInASourceRecord:
                return "{\"kind\":\"x\",\"x\":" + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
            case .objectsInASourceRecord:
                return "{\"kind\":\"x\",\"x\":" + String(repeating: "{\"a\":", count: depth) + "1" + String(repeating: "}", count: depth) + "}"
            }
        }
    }

    @Test(arguments: DeepJSON.allCases)
    func deeplyNestedJSONIsRefused(_ shape: DeepJSON) {
        #expect(throws: DecodingError.self) { try JSON.decode(Manifest.self, from: Data(shape.text.utf8)) }
        #expect(throws: DecodingError.self) { try JSON.decode(SourceRecord.self, from: Data(shape.text.utf8)) }
    }

    // MARK: Mirror snapshot listings

    @Test func mirrorListingLinesAreParsedOrRefused() {
        let blob = BlobAddress(sha256: [UInt8](repeating: 0x3a, count: 32))
        let seeds = [
            MirrorEntry(key: Array("photos/a b+c\"q\"\\.jpg".utf8), size: 1234, etag: "\"9b2c-2\"", modified: 1_764_444_444_123,
                        contentType: "image/jpeg", metadata: [MirrorHeader("owner", "ann")],
                        headers: [MirrorHeader("cache-control", "max-age=60")], blob: blob),
            MirrorEntry(key: [0x66, 0xff, 0x0a, 0x00], size: 0, etag: "", modified: 0, blob: blob),
        ].map(MirrorListingCodec.encode) + [Array(#"{"key":"k","size":1,"etag":"e","modified":2,"blob":"sha256:00","later":[1,{"x":[null,true,1.5e3]}]}"#.utf8)]
        let tokens = Self.jsonTokens + [#""keyBase64":"#, #""blob":"hmac-sha256:"#, #""meta":{"#].map { Array($0.utf8) }
        let report = Fuzz.run("mirror-listing", seeds: seeds, dictionary: tokens, iterations: 6000,
                              accept: { ($0 as? LifeboatError)?.code == .integrity }) { input in
            let entry = try MirrorListingCodec.decode(input)
            // A line read back is written back the same way (no loss, no crash on odd bytes).
            _ = MirrorListingCodec.encode(entry)
        }
        #expect(report.failures.isEmpty, "\(report)")
    }

    /// Found by fuzzing: arrays nested in a member a later version added made the reader
    /// recurse once per level (only objects counted their depth) until the stack overflowed.
    @Test func deeplyNestedListingLinesAreRefused() {
        let line = #"{"key":"k","size":1,"etag":"e","modified":2,"blob":"sha256:00","later":"# + String(repeating: "[", count: 100_000)
        let error = #expect(throws: LifeboatError.self) { try MirrorListingCodec.decode(Array(line.utf8)) }
        #expect(error?.message.contains("nested too deeply") == true)
        let shallow = #"{"key":"k","size":1,"etag":"e","modified":2,"blob":"sha256:"# + String(repeating: "00", count: 32)
            + #"","later":"# + String(repeating: "[", count: 20) + String(repeating: "]", count: 20) + "}"
        #expect(throws: Never.self) { try MirrorListingCodec.decode(Array(shallow.utf8)) }
    }

    // MARK: S3's XML

    static let s3Documents = [
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bucket</Name><Prefix>p/</Prefix>\
        <KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>\
        <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>\
        <Contents><Key>p/a&amp;b&#x41;&#66;</Key><LastModified>2026-11-30T03:00:00.000Z</LastModified>\
        <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>1234</Size><StorageClass>STANDARD</StorageClass></Contents>\
        <Contents><Key><![CDATA[p/<raw>]]></Key><LastModified>2026-11-30T03:00:00Z</LastModified><ETag>"e-2"</ETag><Size>0</Size></Contents>\
        <CommonPrefixes><Prefix>p/sub/</Prefix></CommonPrefixes></ListBucketResult>
        """,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request time and the server's time is too large.</Message>\
        <RequestTime>20261130T030000Z</RequestTime><ServerTime>2026-11-30T03:20:00Z</ServerTime><RequestId>4442587FB7D0A2F9</RequestId></Error>
        """,
        """
        <InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>k</Key>\
        <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId></InitiateMultipartUploadResult>
        """,
        """
        <CompleteMultipartUploadResult><Location>http://b.s3/k</Location><Bucket>b</Bucket><Key>k</Key>\
        <ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag></CompleteMultipartUploadResult>
        """,
        """
        <ListMultipartUploadsResult><Bucket>b</Bucket><Upload><Key>k</Key><UploadId>u1</UploadId>\
        <Initiated>2026-11-30T03:00:00.000Z</Initiated></Upload><!-- a comment --><Upload><Key>k2</Key><UploadId>u2</UploadId></Upload>\
        </ListMultipartUploadsResult>
        """,
        """
        <DeleteResult><Deleted><Key>a</Key></Deleted><Error><Key>b</Key><Code>AccessDenied</Code><Message>no</Message></Error></DeleteResult>
        """,
        "<CopyPartResult><LastModified>2026-11-30T03:00:00.000Z</LastModified><ETag>\"x\"</ETag></CopyPartResult>",
    ].map { Array($0.utf8) }

    static let xmlTokens: [[UInt8]] = [
        "<", ">", "</", "/>", "<?", "?>", "<!--", "-->", "<![CDATA[", "]]>", "<!DOCTYPE x [<!ENTITY a \"b\">]>", "&amp;",
        "&#0;", "&#x110000;", "&#xD800;", "&#99999999999;", "&a;", "&", ";", "\"", "'", "=", " a=\"", "xmlns:s3=",
        "<s3:Key>", "</s3:Key>", "<Contents>", "</Contents>", "<Key>", "</Key>", "<Size>", "</Size>", "<a><a><a><a>",
    ].map { Array($0.utf8) }

    @Test func s3ResponsesAreParsedOrRefused() {
        let report = Fuzz.run("s3-xml", seeds: Self.s3Documents, dictionary: Self.xmlTokens, iterations: 5000,
                              accept: { $0 is XMLNode.ParseError }) { input in
            let root = try XMLNode.parse(input)
            // What the S3 client reads of each document.
            for item in root.all("Contents") { _ = (item["Key"], item["LastModified"], Int64(item["Size"] ?? ""), item["ETag"]) }
            _ = (root["Code"], root["Message"], root["UploadId"], root["IsTruncated"], root["NextContinuationToken"])
            _ = root.all("CommonPrefixes").compactMap { $0["Prefix"] } + root.all("Upload").map { ($0["Key"] ?? "") + ($0["UploadId"] ?? "") }
        }
        #expect(report.failures.isEmpty, "\(report)")
    }

    /// Found by fuzzing: nesting elements made the reader recurse once per level until the
    /// stack overflowed.
    @Test(arguments: [100, 100_000, 1_000_000])
    func deeplyNestedXMLIsRefused(depth: Int) {
        let document = String(repeating: "<a>", count: depth) + String(repeating: "</a>", count: depth)
        if depth <= XMLNode.maximumDepth {
            #expect(throws: Never.self) { try XMLNode.parse(document) }
        } else {
            let error = #expect(throws: XMLNode.ParseError.self) { try XMLNode.parse(document) }
            #expect(error?.description.contains("nested more than \(XMLNode.maximumDepth)") == true)
        }
    }

    // MARK: RESP

    static let respSeeds: [[UInt8]] = [
        RESP.command(["SET", "key", "value"]), RESP.command(["REPLCONF", "capa", "eof"]),
        Array("+OK\r\n".utf8), Array("-ERR unknown command 'FOO'\r\n".utf8), Array(":-42\r\n".utf8),
        Array("$5\r\nhello\r\n".utf8), Array("$-1\r\n*-1\r\n$0\r\n\r\n".utf8),
        Array("*3\r\n$3\r\nfoo\r\n:1\r\n*2\r\n+a\r\n-b\r\n".utf8),
        Array("$74\r\n# Persistence\r\nloading:0\r\nrdb_bgsave_in_progress:0\r\nrdb_last_bgsave_status:ok\r\n\r\n".utf8),
    ]

    static let respTokens: [[UInt8]] = ["\r\n", "\r", "\n", "+", "-", ":", "$", "*", "$-1", "*-1", "$0\r\n\r\n",
                                        "*1\r\n*1\r\n*1\r\n*1\r\n", "$999999999999\r\n", "*1048577\r\n"].map { Array($0.utf8) }

    @Test func respRepliesAreDecodedOrRefused() {
        let report = Fuzz.run("resp", seeds: Self.respSeeds, dictionary: Self.respTokens, iterations: 12_000,
                              accept: { $0 is RESP.ProtocolError }) { input in
            // As the connection reads: decode a value, drop it, decode the next.
            var offset = 0
            while offset < input.count, let (value, count) = try RESP.decode(Array(input[offset...])) {
                _ = (value.description, value.text, value.errorCode)
                offset += count
            }
        }
        #expect(report.failures.isEmpty, "\(report)")
    }

    /// A reply declaring a huge length is refused from its header alone, or waits for bytes
    /// that will never come without allocating for them.
    @Test(arguments: [
        ("$999999999999\r\n", true), ("$9223372036854775807\r\n", true), ("$99999999999999999999999\r\n", true),
        ("$-2\r\n", true), ("*4294967296\r\n", true), ("*-9\r\n", true), ("$67108864\r\n", false), ("*1048576\r\n", false),
        (String(repeating: "*1\r\n", count: 100), true),
    ])
    func respLengthsAreBoundedBeforeAllocating(reply: String, refused: Bool) throws {
        var outcome: Result<(value: RESPValue, count: Int)?, any Error> = .success(nil)
        let growth = Fuzz.memoryGrowth { outcome = Result { try RESP.decode(Array(reply.utf8)) } }
        #expect(growth.heap < 16 << 20, "heap grew by \(growth.heap) bytes")
        #expect(growth.peak < 64 << 20, "peak resident size grew by \(growth.peak) bytes")
        switch outcome {
        case .success(let value):
            #expect(!refused)
            #expect(value == nil)  // more bytes needed
        case .failure(let error):
            #expect(refused)
            #expect(error is RESP.ProtocolError)
        }
    }

    // MARK: RDB

    static func rdbFixture() throws -> [UInt8] {
        let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil)
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        return [UInt8](try Data(contentsOf: url.appendingPathComponent("redis/dump-7.0.15.rdb")))
    }

    @Test func rdbFilesAreCheckedOrRefused() throws {
        let fixture = try Self.rdbFixture()
        let seeds = [fixture, Array("REDIS0003".utf8) + [0xfe, 0x00, 0xff], Array("REDIS0011".utf8) + [0xff] + [UInt8](repeating: 0, count: 8)]
        let tokens: [[UInt8]] = [Array("REDIS".utf8), Array("0011".utf8), [0xff], [0xfe, 0x00], [0xfa], [0xc0], [0x80, 0xff, 0xff, 0xff, 0xff]]
        var random = FuzzRandom(seed: Fuzz.seed(for: "rdb-split"))
        let report = Fuzz.run("rdb", seeds: seeds, dictionary: tokens, iterations: 3000,
                              accept: { ($0 as? LifeboatError)?.code == .integrity }) { input in
            // In pieces of random sizes, as the transfer hands them over.
            var check = RDBCheck(what: "RDB file 'dump.rdb'", hint: "Back up again.")
            var offset = 0
            while offset < input.count {
                let count = min(input.count - offset, 1 + random.below(64))
                try check.update(Array(input[offset..<(offset + count)]))
                offset += count
            }
            _ = try check.finish()
        }
        #expect(report.failures.isEmpty, "\(report)")
    }

    @Test func rdbTransfersAreFramedOrRefused() throws {
        let payload = try Self.rdbFixture()
        let mark = [UInt8](repeating: UInt8(ascii: "m"), count: RDBTransferHeader.markLength)
        let seeds = [
            Array("\n\n$\(payload.count)\r\n".utf8) + payload,
            Array("$EOF:".utf8) + mark + [0x0d, 0x0a] + payload + mark,
            Array("-NOPERM this user has no permissions to run the 'sync' command\r\n".utf8),
        ]
        var random = FuzzRandom(seed: Fuzz.seed(for: "rdb-transfer-split"))
        let report = Fuzz.run("rdb-transfer", seeds: seeds, dictionary: [Array("$EOF:".utf8), mark, Array("\r\n".utf8)],
                              iterations: 3000, accept: { $0 is RESP.ProtocolError }) { input in
            var rest = input[...]
            var header: RDBTransferHeader?
            while header == nil, let newline = rest.firstIndex(of: 0x0a) {
                switch try RDBTransferHeader.parse(line: Array(rest[..<newline])) {
                case .keepalive: break
                case .error: return
                case .header(let parsed): header = parsed
                }
                rest = rest[(newline + 1)...]
            }
            guard let header else { return }
            var framer = RDBPayloadFramer(header: header)
            var output: [UInt8] = []
            while !rest.isEmpty, !framer.isComplete {
                let count = min(rest.count, framer.readLimit(1 + random.below(4096)))
                guard count > 0 else { break }
                framer.feed(Array(rest.prefix(count)), into: &output)
                rest = rest.dropFirst(count)
            }
            if output.count > input.count { throw FuzzFinding("the framer delivered more bytes than it was fed") }
        }
        #expect(report.failures.isEmpty, "\(report)")
    }
}

/// A property a fuzzed input broke (not a parser's refusal).
struct FuzzFinding: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
