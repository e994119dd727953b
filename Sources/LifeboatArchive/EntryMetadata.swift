/// The owner of an entry, by id and, when the name is known, by name (as tar stores it).
public struct EntryOwner: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    /// The user's name, nil when the id has none (or none that is valid UTF-8).
    public var user: String?
    /// The group's name, nil when the id has none.
    public var group: String?

    public init(uid: UInt32, gid: UInt32, user: String? = nil, group: String? = nil) {
        self.uid = uid
        self.gid = gid
        self.user = user
        self.group = group
    }
}

/// The number of a character or block device.
public struct DeviceNumber: Sendable, Equatable {
    public var major: UInt32
    public var minor: UInt32

    public init(major: UInt32, minor: UInt32) {
        self.major = major
        self.minor = minor
    }
}
