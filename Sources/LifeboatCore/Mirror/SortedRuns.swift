/// Sorting more records than fit in memory: `SortedRunBuilder` cuts a stream into bounded
/// runs, sorts each, and hands it to a spill closure (the caller writes it to a file);
/// `SortedMerge` merges the runs back into one stream in order, checking the order as it goes.
/// Pure: what a run is stored in is the caller's business.
public struct SortedRunBuilder<Element> {
    /// Elements per run: the most held in memory at once.
    public let limit: Int
    let precedes: (Element, Element) -> Bool
    public private(set) var buffer: [Element] = []
    /// How many runs were spilled so far.
    public private(set) var spilled = 0

    public init(limit: Int, precedes: @escaping (Element, Element) -> Bool) {
        self.limit = max(1, limit)
        self.precedes = precedes
    }

    /// Adds an element; when the buffer is full, sorts it and hands it to `spill`.
    public mutating func add(_ element: Element, spill: ([Element]) throws -> Void) rethrows {
        buffer.append(element)
        if buffer.count >= limit { try flush(spill) }
    }

    /// Sorts and spills what is buffered, if anything. After it, `buffer` is empty.
    public mutating func flush(_ spill: ([Element]) throws -> Void) rethrows {
        guard !buffer.isEmpty else { return }
        buffer.sort(by: precedes)  // already sorted (S3's own order) is the cheap case
        try spill(buffer)
        buffer.removeAll(keepingCapacity: true)
        spilled += 1
    }

    /// The buffered elements sorted, for a stream that never filled a run (nothing spilled):
    /// then no file is needed at all.
    public mutating func sortedBuffer() -> [Element] {
        buffer.sort(by: precedes)
        defer { buffer = [] }
        return buffer
    }
}

/// Merges sorted runs into one stream in order. With `unique` (the default) each run must be
/// strictly increasing and no element may appear in two runs: either would mean a listing
/// that names a key twice or out of order, which is reported (`.integrity`, with `describe`'s
/// words for the elements) rather than silently reordered. Without it, equal elements are
/// allowed (and come out together); order is still checked.
public struct SortedMerge<Element> {
    private var runs: [() throws -> Element?]
    private var heads: [Element?]
    private let precedes: (Element, Element) -> Bool
    private let describe: (Element) -> String
    private let what: String
    private let unique: Bool
    private var last: Element?
    private var started = false

    /// - Parameters:
    ///   - runs: each returns its next element, nil at its end.
    ///   - what: what is merged, for messages ("the listing of bucket 'b'").
    public init(runs: [() throws -> Element?], what: String, unique: Bool = true, precedes: @escaping (Element, Element) -> Bool,
                describe: @escaping (Element) -> String) {
        self.runs = runs
        self.unique = unique
        self.heads = Array(repeating: nil, count: runs.count)
        self.precedes = precedes
        self.describe = describe
        self.what = what
    }

    public mutating func next() throws -> Element? {
        if !started {
            started = true
            for index in runs.indices { heads[index] = try runs[index]() }
        }
        var best: Int?
        for index in heads.indices {
            guard let head = heads[index] else { continue }
            if let b = best, let current = heads[b], !precedes(head, current) { continue }
            best = index
        }
        guard let best, let element = heads[best] else { return nil }
        let following = try runs[best]()
        if let following, unique ? !precedes(element, following) : precedes(following, element) {
            throw LifeboatError(.integrity, "\(what) is not in key order: '\(describe(following))' follows '\(describe(element))'",
                                hint: "The server's listing (or a stored snapshot) is out of order or names a key twice; run again, and report it if it persists.")
        }
        heads[best] = following
        if unique, let last, !precedes(last, element) {
            throw LifeboatError(.integrity, "\(what) names '\(describe(element))' twice",
                                hint: "The server's listing named a key twice; run again, and report it if it persists.")
        }
        last = element
        return element
    }
}

/// How an object of a new listing compares with the previous snapshot of its bucket.
public enum MirrorChange: Sendable, Equatable {
    /// Same key, size, ETag and time: the previous entry stands as it is (no request).
    case unchanged(MirrorEntry)
    /// Same key, size and ETag, another time: the content is the same (the blob is reused)
    /// but the object was written again, perhaps with other metadata: one HEAD refreshes it.
    case touched(previous: MirrorEntry, current: MirrorListedObject)
    /// New, or changed (another size or ETag, even with the same size): its content is copied.
    case copy(MirrorListedObject, previous: MirrorEntry?)
    /// In the previous snapshot, not in the new listing.
    case removed(MirrorEntry)
}

/// The merge-join of a new listing with the previous snapshot of the same bucket, both in key
/// order, one element of each in memory: what an incremental run must copy, refresh or
/// leave. Out-of-order input is an error (`.integrity`).
public struct MirrorListingDiff {
    private var current: () throws -> MirrorListedObject?
    private var previous: () throws -> MirrorEntry?
    private var nextCurrent: MirrorListedObject?
    private var nextPrevious: MirrorEntry?
    private var lastPrevious: [UInt8]?
    private var lastCurrent: [UInt8]?
    private var started = false
    private let what: String

    public init(current: @escaping () throws -> MirrorListedObject?, previous: @escaping () throws -> MirrorEntry?, what: String) {
        self.current = current
        self.previous = previous
        self.what = what
    }

    private mutating func advanceCurrent() throws {
        nextCurrent = try current()
        if let key = nextCurrent?.key {
            if let last = lastCurrent, !MirrorKeyOrder.precedes(last, key) {
                throw LifeboatError(.integrity, "the listing of \(what) is not in key order at '\(String(decoding: key, as: UTF8.self))'")
            }
            lastCurrent = key
        }
    }

    private mutating func advancePrevious() throws {
        nextPrevious = try previous()
        if let key = nextPrevious?.key {
            if let last = lastPrevious, !MirrorKeyOrder.precedes(last, key) {
                throw LifeboatError(.integrity, "the previous snapshot of \(what) is not in key order at '\(String(decoding: key, as: UTF8.self))'",
                                    hint: "Run 'lifeboat verify' on the previous backup.")
            }
            lastPrevious = key
        }
    }

    public mutating func next() throws -> MirrorChange? {
        if !started {
            started = true
            try advanceCurrent()
            try advancePrevious()
        }
        switch (nextCurrent, nextPrevious) {
        case (nil, nil):
            return nil
        case (let object?, nil):
            try advanceCurrent()
            return .copy(object, previous: nil)
        case (nil, let entry?):
            try advancePrevious()
            return .removed(entry)
        case (let object?, let entry?):
            if MirrorKeyOrder.precedes(object.key, entry.key) {
                try advanceCurrent()
                return .copy(object, previous: nil)
            }
            if MirrorKeyOrder.precedes(entry.key, object.key) {
                try advancePrevious()
                return .removed(entry)
            }
            try advanceCurrent()
            try advancePrevious()
            guard object.size == entry.size, object.etag == entry.etag, !object.etag.isEmpty else {
                return .copy(object, previous: entry)
            }
            return object.modified == entry.modified ? .unchanged(entry) : .touched(previous: entry, current: object)
        }
    }
}
