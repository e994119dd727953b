// TEMPORARY until the storage contract v2 lands (it defines alreadyExists in LifeboatError.swift).
extension LifeboatError.Code {
    public static let alreadyExists = LifeboatError.Code("already-exists", badInput: false)
}
extension ObjectStore {
    public func listAll(prefix: String) throws -> [ObjectInfo] { try list(prefix: prefix) }
    public func openWriter(key: String, ifAbsent: Bool) throws -> any ObjectWriter { try openWriter(key: key) }
}
public struct ListRequest: Sendable, Equatable {
    public var prefix: String
    public var delimiter: String?
    public var startAfter: String?
    public var cursor: String?
    public var pageSize: Int
    public init(prefix: String = "", delimiter: String? = nil, startAfter: String? = nil, cursor: String? = nil, pageSize: Int = 1000) {
        self.prefix = prefix; self.delimiter = delimiter; self.startAfter = startAfter; self.cursor = cursor; self.pageSize = pageSize
    }
}
public struct ListPage: Sendable, Equatable {
    public var objects: [ObjectInfo]
    public var commonPrefixes: [String]
    public var nextCursor: String?
}
extension ObjectStore {
    public func listPage(_ request: ListRequest) throws -> ListPage {
        var objects: [ObjectInfo] = []
        var prefixes: [String] = []
        for object in try list(prefix: request.prefix) {
            let rest = object.key.dropFirst(request.prefix.count)
            if let d = request.delimiter, let r = rest.range(of: d) {
                let p = request.prefix + rest[..<r.upperBound]
                if prefixes.last != p { prefixes.append(p) }
            } else { objects.append(object) }
        }
        return ListPage(objects: objects, commonPrefixes: prefixes, nextCursor: nil)
    }
}
