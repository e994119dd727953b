extension ConfigNode {
    /// Whether the node is a mapping, for keys that take either a scalar or a mapping
    /// (`tls: true`, `tls: { ca_bundle: … }`). Records nothing.
    public var isMapping: Bool {
        if case .mapping = node { return true }
        return false
    }
}
