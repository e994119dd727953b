import Crypto
import Foundation
import Testing
@testable import LifeboatCore

private func address(_ byte: UInt8) -> BlobAddress {
    BlobAddress(sha256: [UInt8](repeating: byte, count: 32))
}

private func entry(_ key: String, size: Int64 = 3, etag: String = "\"e\"", modified: Int64 = 1000, blob: UInt8 = 1) -> MirrorEntry {
    MirrorEntry(key: Array(key.utf8), size: size, etag: etag, modified: modified, blob: address(blob))
}

private func listed(_ key: String, size: Int64 = 3, etag: String = "\"e\"", modified: Int64 = 1000) -> MirrorListedObject {
    MirrorListedObject(key: Array(key.utf8), size: size, etag: etag, modified: modified)
}

/// Pulls the elements of an array one at a time, as the engine pulls lines of a file.
private func puller<T>(_ items: [T]) -> () throws -> T? {
    var iterator = items.makeIterator()
    return { iterator.next() }
}

@Suite struct MirrorListingEncoding {
    @Test func anEntryRoundTripsWithEveryField() throws {
        let original = MirrorEntry(
            key: Array("photos/2026/a b+c%41\"quote\"\\.jpg".utf8), size: 1234, etag: "\"9b2c-2\"", modified: 1_764_444_444_123,
            contentType: "image/jpeg; charset=\"x\"", metadata: [MirrorHeader("owner", "ann"), MirrorHeader("a-first", "1")],
            headers: [MirrorHeader("cache-control", "max-age=60")], blob: address(7))
        let line = MirrorListingCodec.encode(original)
        #expect(!line.contains(0x0A))
        let decoded = try MirrorListingCodec.decode(line)
        #expect(decoded == original)
        #expect(decoded.metadata.map(\.name) == ["a-first", "owner"])  // sorted by name
    }

    /// Keys are bytes: control characters, a newline, NFC and NFD forms of one letter, and
    /// bytes that are not UTF-8 at all all come back exactly.
    @Test(arguments: [
        Array("line\nbreak\ttab\r\u{1}\u{7F}".utf8),
        Array("caf\u{E9}".utf8),
        Array("cafe\u{301}".utf8),
        [0x66, 0xFF, 0xFE, 0x2F, 0x80],
        Array("../../etc/passwd".utf8),
        Array("emoji/\u{1F600}".utf8),
    ])
    func keysWithOddBytesRoundTripExactly(key: [UInt8]) throws {
        var original = entry("x")
        original.key = key
        let decoded = try MirrorListingCodec.decode(MirrorListingCodec.encode(original))
        #expect(decoded.key == key)
    }

    @Test func membersOfLaterVersionsAreIgnored() throws {
        let line = #"{"future":[1,{"a":true},null],"key":"k","size":1,"etag":"\"x\"","modified":5,"blob":"sha256:"#
            + String(repeating: "ab", count: 32) + #"","more":{"nested":{"deep":1.5}}}"#
        let decoded = try MirrorListingCodec.decode(Array(line.utf8))
        #expect(decoded.keyText == "k")
        #expect(decoded.blob.hex == String(repeating: "ab", count: 32))
    }

    @Test(arguments: [
        #"{"key":"k","size":1,"etag":"x","modified":5}"#,  // no blob
        #"{"key":"k","size":-1,"etag":"x","modified":5,"blob":"sha256:00"}"#,
        #"{"key":"k","size":"1","etag":"x","modified":5,"blob":"sha256:00"}"#,
        #"{"key":"k""#,
        #"["k"]"#,
        #"{"key":"\ud800","size":1,"etag":"x","modified":5,"blob":"x:1"}"#,
    ])
    func damagedLinesAreIntegrityErrors(line: String) {
        #expect(throws: LifeboatError.self) { try MirrorListingCodec.decode(Array(line.utf8)) }
    }

    @Test func unicodeEscapesAndSurrogatePairsDecode() throws {
        let line = #"{"key":"\u00e9\ud83d\ude00\u0000","size":0,"etag":"","modified":0,"blob":"sha256:"#
            + String(repeating: "0", count: 64) + #""}"#
        #expect(try MirrorListingCodec.decode(Array(line.utf8)).key == Array("\u{E9}\u{1F600}\u{0}".utf8))
    }

    @Test func responseHeadersGiveTypeMetadataAndHeaders() {
        let described = MirrorEntry.description(fromResponseHeaders: [
            (name: "Content-Type", value: "text/plain"), (name: "X-Amz-Meta-Owner", value: "ann"), (name: "ETag", value: "\"x\""),
            (name: "Cache-Control", value: "no-cache"), (name: "Content-Length", value: "3"), (name: "x-amz-meta-", value: "odd"),
        ])
        #expect(described.contentType == "text/plain")
        #expect(described.metadata == [MirrorHeader("owner", "ann")])
        #expect(described.headers == [MirrorHeader("cache-control", "no-cache")])
    }
}

@Suite struct BlobAddresses {
    @Test func addressesNameTheirSchemeAndTheirKey() throws {
        let a = try #require(BlobAddress(parsing: "sha256:" + String(repeating: "3a", count: 32)))
        #expect(a.description == "sha256:" + String(repeating: "3a", count: 32))
        #expect(try MirrorLayout.blobKey(policy: "p", address: a) == "p/blobs/3a/" + String(repeating: "3a", count: 32))
        #expect(MirrorLayout.address(ofBlobKey: "p/blobs/3a/" + a.hex, policy: "p") == a)
        #expect(MirrorLayout.address(ofBlobKey: "p/blobs/3b/" + a.hex, policy: "p") == nil)
        #expect(MirrorLayout.address(ofBlobKey: "q/blobs/3a/" + a.hex, policy: "p") == nil)
    }

    @Test func anUnknownSchemeParsesButHasNoKeyInThisVersion() throws {
        let future = try #require(BlobAddress(parsing: "blake3:abcdef"))
        #expect(future.scheme == "blake3")
        #expect(throws: LifeboatError.self) { try MirrorLayout.blobKey(policy: "p", address: future) }
        #expect(BlobAddress(parsing: "hmac-sha256:abcdef") == nil)  // known now: its digest is checked
        #expect(BlobAddress(parsing: "sha256:abc") == nil)  // a known scheme's digest is checked
        #expect(BlobAddress(parsing: "SHA256:" + String(repeating: "0", count: 64)) == nil)
        #expect(BlobAddress(parsing: "no-colon") == nil)
    }

    @Test func keyedAddressesAreStoredAsPlainOnesAndReadBackWithTheRepositorysScheme() throws {
        let hex = String(repeating: "5c", count: 32)
        let keyed = try #require(BlobAddress(parsing: "hmac-sha256:" + hex))
        let key = try MirrorLayout.blobKey(policy: "p", address: keyed)
        #expect(key == "p/blobs/5c/" + hex)
        #expect(MirrorLayout.address(ofBlobKey: key, policy: "p", scheme: BlobAddress.hmacSHA256Scheme) == keyed)
        #expect(MirrorLayout.address(ofBlobKey: key, policy: "p") != keyed)
    }

    @Test func aKeyedAddressIsTheHMACOfTheContentAndDiffersFromItsSHA256() throws {
        let content = Array("a file everybody has".utf8)
        let key = SymmetricKey(data: Array(repeating: UInt8(7), count: 32))
        var keyed = ContentAddressing.keyed(key).hasher()
        content.withUnsafeBytes { keyed.update($0) }
        var plain = ContentAddressing.sha256.hasher()
        content.withUnsafeBytes { plain.update($0) }
        #expect(keyed.finalize() == BlobAddress(hmacSHA256: HMAC<SHA256>.authenticationCode(for: content, using: key)))
        #expect(plain.finalize() == BlobAddress(sha256: SHA256.hash(data: content)))
        #expect(keyed.finalize().hex != plain.finalize().hex)
    }

    /// `n/t` splits the address space into t contiguous parts: every address is in exactly
    /// one, and the parts are about equal.
    @Test func subsetsPartitionTheAddressSpace() throws {
        let subsets = (1...7).map { BlobSubset(part: $0, of: 7)! }
        var counts = [Int](repeating: 0, count: 7)
        var state: UInt64 = 0x1234_5678_9ABC_DEF0
        for _ in 0..<7000 {
            var digest: [UInt8] = []
            for _ in 0..<32 {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                digest.append(UInt8(truncatingIfNeeded: state))
            }
            let address = BlobAddress(sha256: digest)
            let parts = subsets.indices.filter { subsets[$0].contains(address) }
            #expect(parts.count == 1)
            counts[parts[0]] += 1
        }
        #expect(counts.allSatisfy { (800...1200).contains($0) }, "\(counts)")
        #expect(BlobSubset(part: 1, of: 1)!.contains(address(0xFF)))
        #expect(BlobSubset(part: 1, of: 2)!.contains(address(0x00)))
        #expect(BlobSubset(part: 2, of: 2)!.contains(address(0xFF)))
        #expect(BlobSubset(parsing: "2/7") == BlobSubset(part: 2, of: 7))
        for bad in ["0/7", "8/7", "1/0", "x/2", "1/2/3", ""] { #expect(BlobSubset(parsing: bad) == nil, "\(bad)") }
    }
}

@Suite struct SortedRunMerging {
    let byValue: (Int, Int) -> Bool = { $0 < $1 }

    func merge(_ runs: [[Int]], unique: Bool = true) throws -> [Int] {
        var merge = SortedMerge(runs: runs.map { puller($0) }, what: "the numbers", unique: unique, precedes: byValue,
                                describe: { "\($0)" })
        var out: [Int] = []
        while let next = try merge.next() { out.append(next) }
        return out
    }

    @Test func runsBuiltFromAStreamMergeBackInOrder() throws {
        var builder = SortedRunBuilder<Int>(limit: 4, precedes: byValue)
        var runs: [[Int]] = []
        for value in [9, 3, 7, 1, 8, 2, 6, 4, 5, 0, 11] { builder.add(value) { runs.append($0) } }
        builder.flush { runs.append($0) }
        #expect(runs.count == 3)
        #expect(runs.allSatisfy { $0 == $0.sorted() })
        #expect(try merge(runs) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11])
    }

    @Test func aSmallStreamStaysInOneBufferedRun() {
        var builder = SortedRunBuilder<Int>(limit: 10, precedes: byValue)
        for value in [3, 1, 2] { builder.add(value) { _ in Issue.record("nothing is spilled") } }
        #expect(builder.sortedBuffer() == [1, 2, 3])
    }

    @Test func aKeyInTwoRunsOrOutOfOrderInOneIsAnError() throws {
        #expect(throws: LifeboatError.self) { try merge([[1, 2], [2, 3]]) }
        #expect(throws: LifeboatError.self) { try merge([[1, 3, 2]]) }
        #expect(throws: LifeboatError.self) { try merge([[1, 1]]) }
        #expect(try merge([[]]) == [])
        #expect(try merge([[1, 1, 2], [1, 3]], unique: false) == [1, 1, 1, 2, 3])
        #expect(throws: LifeboatError.self) { try merge([[2, 1]], unique: false) }
    }
}

@Suite struct ListingDiffs {
    func changes(current: [MirrorListedObject], previous: [MirrorEntry]) throws -> [MirrorChange] {
        var diff = MirrorListingDiff(current: puller(current), previous: puller(previous), what: "s3://b/")
        var out: [MirrorChange] = []
        while let change = try diff.next() { out.append(change) }
        return out
    }

    @Test func eachObjectIsUnchangedTouchedCopiedOrRemoved() throws {
        let previous = [entry("a"), entry("b"), entry("c", etag: "\"old\""), entry("d"), entry("e", modified: 1)]
        let current = [listed("a"), listed("b", size: 4), listed("c", etag: "\"new\""), listed("e", modified: 2), listed("f")]
        let result = try changes(current: current, previous: previous)
        #expect(result == [
            .unchanged(entry("a")),
            .copy(listed("b", size: 4), previous: entry("b")),
            .copy(listed("c", etag: "\"new\""), previous: entry("c", etag: "\"old\"")),  // same size, another ETag
            .removed(entry("d")),
            .touched(previous: entry("e", modified: 1), current: listed("e", modified: 2)),
            .copy(listed("f"), previous: nil),
        ])
    }

    /// Byte order, not String order: the NFC and NFD spellings of "é" are two keys, and
    /// neither stands for the other.
    @Test func keysCompareAsBytes() throws {
        let nfc = "caf\u{E9}", nfd = "cafe\u{301}"
        #expect(nfc == nfd)  // what String would say
        let result = try changes(current: [listed(nfd)], previous: [entry(nfc)])
        #expect(result == [.copy(listed(nfd), previous: nil), .removed(entry(nfc))])  // "e" < "é" in UTF-8
    }

    @Test func anEmptyETagIsNeverTakenAsUnchanged() throws {
        #expect(try changes(current: [listed("a", etag: "")], previous: [entry("a", etag: "")])
            == [.copy(listed("a", etag: ""), previous: entry("a", etag: ""))])
    }

    @Test func inputOutOfOrderIsAnError() {
        #expect(throws: LifeboatError.self) { try changes(current: [listed("b"), listed("a")], previous: []) }
        #expect(throws: LifeboatError.self) { try changes(current: [], previous: [entry("b"), entry("b")]) }
    }

    @Test func aRestoreComparesTheSnapshotWithTheTarget() throws {
        var diff = MirrorTargetDiff(snapshot: puller([entry("a"), entry("b"), entry("c")]),
                                    target: puller([listed("b"), listed("c", etag: "\"other\""), listed("z")]), what: "s3://t/")
        var out: [MirrorTargetChange] = []
        while let change = try diff.next() { out.append(change) }
        #expect(out == [.missing(entry("a")), .sameContent(entry("b"), target: listed("b")),
                        .different(entry("c"), target: listed("c", etag: "\"other\"")), .extra(listed("z"))])
    }
}

@Suite struct MirrorRestorePaths {
    @Test func keysBecomeContainedPaths() throws {
        let plain = try MirrorKeyPath.components(of: Array("a/b/c.txt".utf8), size: 3)
        #expect(plain.components == [Array("a".utf8), Array("b".utf8), Array("c.txt".utf8)])
        #expect(!plain.directory)
        let folder = try MirrorKeyPath.components(of: Array("a/b/".utf8), size: 0)
        #expect(folder.directory)
        #expect(folder.components.count == 2)
        #expect(try MirrorKeyPath.components(of: Array("..a/b..".utf8), size: 1).components.count == 2)
    }

    @Test(arguments: [
        ("../x", MirrorKeyPath.Refusal.dotComponent), ("a/../../x", .dotComponent), ("a/./b", .dotComponent), ("..", .dotComponent),
        ("/etc/passwd", .absolute), ("a//b", .emptyComponent), ("", .empty), ("a\u{0}b", .nul), ("dir/", .markerWithContent),
    ])
    func hostileKeysAreRefused(key: String, refusal: MirrorKeyPath.Refusal) {
        #expect(throws: refusal) { try MirrorKeyPath.components(of: Array(key.utf8), size: key == "dir/" ? 5 : 1) }
    }

    @Test func optionsSelectKeysByPrefixOrExactKey() {
        #expect(MirrorRestoreOptions(prefix: "a/").selects(Array("a/b".utf8)))
        #expect(!MirrorRestoreOptions(prefix: "a/").selects(Array("ab".utf8)))
        #expect(MirrorRestoreOptions(key: "a").selects(Array("a".utf8)))
        #expect(!MirrorRestoreOptions(key: "a").selects(Array("a/b".utf8)))
        #expect(MirrorRestoreOptions().selects(Array("anything".utf8)))
    }
}
