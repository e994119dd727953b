import Foundation
import Glibc
import LifeboatArchive
import LifeboatCore
import LifeboatIO

/// A directory of temporary files for one command (sorted runs of a listing, a snapshot's
/// listing being written), under the run's temporary directory; removed with everything in it.
final class ScratchDirectory {
    let path: String
    private var counter = 0

    init(context: RunContext, label: String) throws {
        let parent = context.temporaryDirectory
        try makeDirectories(parent, mode: 0o700)
        var template = Array("\(parent)/lifeboat-\(label)-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            let saved = errno
            throw LifeboatError(.io, "unable to create a temporary directory in '\(parent)': \(errnoText(saved))",
                                hint: "Set state_dir in lifeboat.yaml (temporary files go to its tmp/), or TMPDIR, to a writable directory with free space.")
        }
        path = String(cString: created)
    }

    deinit { remove() }

    /// A new file name in the directory.
    func newPath(_ name: String) -> String {
        counter += 1
        return "\(path)/\(counter)-\(name)"
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)  // scratch space; a leftover is harmless
    }
}

/// Writes lines to a new file through a buffer.
final class LineFileWriter {
    let file: LocalFile
    private var buffer: [UInt8] = []
    private(set) var size: Int64 = 0
    private(set) var lines = 0

    init(path: String) throws {
        file = try LocalFile.createNew(path)
        buffer.reserveCapacity(1 << 20)
    }

    func write(line: [UInt8]) throws {
        buffer += line
        buffer.append(0x0A)
        size += Int64(line.count + 1)
        lines += 1
        if buffer.count >= 1 << 20 { try flush() }
    }

    func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try file.write($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    func close() throws {
        try flush()
        file.close()
    }
}

/// Splits a byte stream into lines (without their newline), reading 256 KiB at a time.
final class LineReader {
    private let read: (UnsafeMutableRawBufferPointer) throws -> Int
    private var buffer = [UInt8](repeating: 0, count: 256 << 10)
    private var start = 0
    private var end = 0
    private var finished = false
    /// The most bytes one line may have (a damaged file is not read into memory whole).
    let limit: Int
    let what: String

    init(what: String, limit: Int = 16 << 20, read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int) {
        self.what = what
        self.limit = limit
        self.read = read
    }

    convenience init(file: LocalFile) {
        self.init(what: "temporary file '\(file.path)'") { try file.read(into: $0) }
    }

    /// The next line, or nil at the end. A last line without a newline counts.
    func next() throws -> ArraySlice<UInt8>? {
        var carried: [UInt8] = []
        while true {
            if let newline = buffer[start..<end].firstIndex(of: 0x0A) {
                let line = buffer[start..<newline]
                start = newline + 1
                if carried.isEmpty { return line }
                carried += line
                return carried[...]
            }
            carried += buffer[start..<end]
            start = 0
            end = 0
            guard carried.count <= limit else {
                throw LifeboatError(.integrity, "\(what) holds a line longer than \(limit) bytes")
            }
            if finished { return carried.isEmpty ? nil : carried[...] }
            let n = try buffer.withUnsafeMutableBytes { try read($0) }
            if n == 0 { finished = true } else { end = n }
        }
    }
}

/// More records than memory should hold, sorted: runs of at most `runLength` sorted in
/// memory and spilled to temporary files as lines, then merged back in order (checked: see
/// `SortedMerge`). Nothing touches the disk when everything fit in one run.
struct SpilledRuns<Element> {
    let scratch: ScratchDirectory
    let precedes: (Element, Element) -> Bool
    let encode: (Element) -> [UInt8]
    let decode: (ArraySlice<UInt8>) throws -> Element
    var builder: SortedRunBuilder<Element>
    private(set) var files: [String] = []
    private(set) var count = 0

    init(scratch: ScratchDirectory, runLength: Int, precedes: @escaping (Element, Element) -> Bool,
         encode: @escaping (Element) -> [UInt8], decode: @escaping (ArraySlice<UInt8>) throws -> Element) {
        self.scratch = scratch
        self.precedes = precedes
        self.encode = encode
        self.decode = decode
        builder = SortedRunBuilder(limit: runLength, precedes: precedes)
    }

    mutating func add(_ element: Element) throws {
        count += 1
        var spilled: [String] = []
        let spill = spiller
        try builder.add(element) { run in spilled.append(try spill(run)) }
        files += spilled
    }

    /// Writes a sorted run to a new temporary file; returns its path.
    var spiller: ([Element]) throws -> String {
        { [scratch, encode] run in
            let path = scratch.newPath("run")
            let writer = try LineFileWriter(path: path)
            for element in run { try writer.write(line: encode(element)) }
            try writer.close()
            return path
        }
    }

    /// Everything added, in order. `unique`: equal elements are an error (a key listed twice).
    mutating func merged(what: String, unique: Bool = true, describe: @escaping (Element) -> String) throws -> SortedMerge<Element> {
        if files.isEmpty {
            var iterator = builder.sortedBuffer().makeIterator()
            return SortedMerge(runs: [{ iterator.next() }], what: what, unique: unique, precedes: precedes, describe: describe)
        }
        var spilled: [String] = []
        let spill = spiller
        try builder.flush { run in spilled.append(try spill(run)) }
        files += spilled
        let decode = self.decode
        let readers = try files.map { path -> () throws -> Element? in
            let reader = LineReader(file: try LocalFile.openForReading(path))
            return { try reader.next().map(decode) }
        }
        return SortedMerge(runs: readers, what: what, unique: unique, precedes: precedes, describe: describe)
    }
}

extension SpilledRuns where Element == MirrorListedObject {
    /// Objects per run: the most listed objects held in memory at once (about 200 bytes each).
    static var listingRunLength: Int { 50_000 }

    /// A bucket's listing, sorted by key.
    init(listingIn scratch: ScratchDirectory) {
        self.init(scratch: scratch, runLength: Self.listingRunLength, precedes: { MirrorKeyOrder.precedes($0.key, $1.key) },
                  encode: MirrorListingCodec.encode(listed:), decode: { try MirrorListingCodec.decodeListed($0) })
    }
}

/// Reads the listing of one bucket from a committed snapshot, entry by entry, checking the
/// listing's SHA-256 (from the manifest) when it ends: a damaged listing is an error before
/// anything relies on all of it.
final class SnapshotListingReader {
    let artifact: ArtifactRecord
    let manifest: Manifest
    private let object: any ObjectReader
    private let archive: ArtifactReader
    private var lines: LineReader?
    private var hasher = ContentHasher()
    private var size: Int64 = 0
    private let expected: EntryRecord
    private var done = false
    let what: String

    init(artifact: ArtifactRecord, of manifest: Manifest, in repository: Repository, purpose: String, context: RunContext) throws {
        self.artifact = artifact
        self.manifest = manifest
        what = "the listing in artifact \(artifact.path) of backup \(manifest.id)"
        guard let entry = artifact.entries.first(where: { $0.path == MirrorLayout.listingEntry }) else {
            throw LifeboatError(.integrity, "artifact \(artifact.path) of backup \(manifest.id) has no \(MirrorLayout.listingEntry) in its manifest record")
        }
        expected = entry
        object = try repository.openArtifact(artifact, of: manifest, context: context, purpose: purpose)
        do {
            archive = try ArtifactReader(source: object, artifactPath: artifact.path)
            guard let header = try archive.nextEntry(), header.path == MirrorLayout.listingEntry else {
                throw LifeboatError(.integrity, "artifact \(artifact.path) of backup \(manifest.id) does not start with \(MirrorLayout.listingEntry)",
                                    hint: "Run 'lifeboat verify \(manifest.policy) \(manifest.id)'.")
            }
        } catch {
            object.close()
            throw error
        }
        lines = LineReader(what: what) { [unowned self] buffer in
            let n = try self.archive.read(into: buffer)
            if n > 0 {
                self.hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                self.size += Int64(n)
            }
            return n
        }
    }

    private var closed = false

    deinit { close() }

    /// The next entry, or nil at the end (after the SHA-256 and size were checked).
    func next() throws -> MirrorEntry? {
        guard !done, let lines else { return nil }
        if let line = try lines.next() {
            do {
                return try MirrorListingCodec.decode(line)
            } catch let error as LifeboatError {
                throw LifeboatError(.integrity, "\(what): \(error.message)", hint: "Run 'lifeboat verify \(manifest.policy) \(manifest.id)'.")
            }
        }
        done = true
        let digest = hasher.finalize()
        guard digest == expected.sha256, size == expected.size else {
            throw LifeboatError(.integrity, "\(what) does not match its manifest (SHA-256 \(digest), \(size) bytes; recorded \(expected.sha256), \(expected.size) bytes)",
                                hint: "Run 'lifeboat verify \(manifest.policy) \(manifest.id)'; restore another backup.")
        }
        return nil
    }

    func close() {
        guard !closed else { return }
        closed = true
        object.close()
    }
}
