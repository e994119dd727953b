import CLifeboatChecksum
import Foundation

/// CRC-32C (Castagnoli), as S3's `x-amz-checksum-crc32c` carries it: computed with the
/// processor's CRC32 instruction where there is one (about 8 GB/s here, against ~1 GB/s for
/// SHA-256), the portable slicing-by-8 code otherwise.
public struct CRC32C: Sendable, Equatable {
    /// The checksum of the bytes so far (0 before any).
    public private(set) var value: UInt32 = 0

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        value = lifeboat_crc32c(value, base, bytes.count)
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc = CRC32C()
        bytes.withUnsafeBytes { crc.update($0) }
        return crc.value
    }

    /// The base64 of the checksum's four bytes, most significant first: the form of the
    /// `x-amz-checksum-crc32c` header and of `<ChecksumCRC32C>`.
    public var base64: String {
        Data([UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]).base64EncodedString()
    }

    /// Whether this machine computes it with a CRC32 instruction.
    public static var usesInstruction: Bool { lifeboat_crc32c_has_instruction() != 0 }
}
