/// Builds one page of a listing from keys offered in byte order, with S3's semantics: the
/// prefix, the lower bound (the later of `startAfter` and the cursor), the delimiter's roll-up
/// into common prefixes, and the page size. The stores that list themselves (local, memory)
/// share it, so that they page exactly as S3 does.
///
/// A walker offers keys in byte order of UTF-8 and stops when `offer` returns false. A
/// walker over a tree (the local store's directories) first asks `decide(subtree:)` for each
/// subtree, so it can skip subtrees wholly outside the page and roll a subtree up into one
/// common prefix without descending into it.
///
/// The cursor of these stores is the last entry of the page (a key or a common prefix): the
/// next page holds the entries sorting strictly after it. One entry past the page size is
/// looked for, so that the last page says it is the last (`nextCursor` nil).
public struct ListPageBuilder {
    public enum SubtreeDecision: Equatable {
        /// No entry of this page can come from the subtree.
        case skip
        /// Walk the subtree's keys.
        case descend
        /// The whole subtree is one common prefix, new on this page: if the subtree holds at
        /// least one object, offer it with `offer(commonPrefix:)`, and do not descend.
        case rollUp([UInt8])
    }

    let prefix: [UInt8]
    let delimiter: [UInt8]?
    /// Entries must sort strictly after this.
    let lowerBound: [UInt8]?
    let pageSize: Int
    private var objects: [ObjectInfo] = []
    private var commonPrefixes: [String] = []
    private var last: [UInt8]?
    /// A page's worth of entries was taken and one more was found.
    public private(set) var isFull = false

    public init(_ request: ListRequest) {
        prefix = Array(request.prefix.utf8)
        delimiter = request.delimiter.map { Array($0.utf8) }
        let bounds = [request.startAfter, request.cursor].compactMap { $0.map { Array($0.utf8) } }
        lowerBound = bounds.max { KeyOrder.precedes($0, $1) }
        pageSize = request.pageSize
    }

    /// Whether a subtree, all of whose keys start with `keyPrefix`, can contribute to the page.
    public func decide(subtree keyPrefix: [UInt8]) -> SubtreeDecision {
        if let lowerBound, KeyOrder.precedes(keyPrefix, lowerBound), !lowerBound.starts(with: keyPrefix) {
            return .skip  // every key of the subtree sorts before the bound
        }
        guard keyPrefix.starts(with: prefix) else {
            return prefix.starts(with: keyPrefix) ? .descend : .skip
        }
        guard let delimiter, let end = Self.end(of: delimiter, in: keyPrefix, from: prefix.count) else { return .descend }
        let common = Array(keyPrefix[..<end])
        return isNew(common) ? .rollUp(common) : .skip
    }

    /// Offers the next key (in byte order). `info` is asked only for an object the page
    /// takes; nil (it vanished meanwhile) leaves it out. Returns false when the page is full:
    /// stop walking.
    public mutating func offer(key: [UInt8], info: () throws -> ObjectInfo?) rethrows -> Bool {
        guard key.starts(with: prefix) else { return true }
        if let delimiter, let end = Self.end(of: delimiter, in: key, from: prefix.count) {
            return offer(commonPrefix: Array(key[..<end]))
        }
        guard isNew(key) else { return true }
        guard !isFull, objects.count + commonPrefixes.count < pageSize else {
            isFull = true
            return false
        }
        guard let info = try info() else { return true }
        objects.append(info)
        last = key
        return true
    }

    /// Offers a common prefix (from `decide(subtree:)`'s `.rollUp`, or a key's roll-up).
    /// Returns false when the page is full: stop walking.
    public mutating func offer(commonPrefix: [UInt8]) -> Bool {
        guard isNew(commonPrefix) else { return true }
        guard !isFull, objects.count + commonPrefixes.count < pageSize else {
            isFull = true
            return false
        }
        commonPrefixes.append(String(decoding: commonPrefix, as: UTF8.self))
        last = commonPrefix
        return true
    }

    /// The page, with a cursor when an entry past it was found.
    public var page: ListPage {
        ListPage(objects: objects, commonPrefixes: commonPrefixes,
                 nextCursor: isFull ? last.map { String(decoding: $0, as: UTF8.self) } : nil)
    }

    /// Whether an entry sorts after the bound and was not taken already (keys rolled up into
    /// one common prefix come one after another).
    private func isNew(_ entry: [UInt8]) -> Bool {
        if let lowerBound, !KeyOrder.precedes(lowerBound, entry) { return false }
        return entry != last
    }

    /// The index just past the first occurrence of `needle` in `haystack` at or after `start`.
    static func end(of needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count - start >= needle.count else { return nil }
        var i = start
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0], haystack[i..<(i + needle.count)].elementsEqual(needle) {
                return i + needle.count
            }
            i += 1
        }
        return nil
    }
}

extension KeyOrder {
    public static func precedes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.lexicographicallyPrecedes(b)
    }
}
