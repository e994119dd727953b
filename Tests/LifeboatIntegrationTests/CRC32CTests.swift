import CLifeboatChecksum
import Foundation
import LifeboatS3
import Testing
import TestSupport

/// CRC-32C against published values, and its two implementations against each other.
@Suite struct CRC32CTests {
    /// The definition, one bit at a time: the reference the fast code must match.
    static func bitwise(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 1 ? 0x82F6_3B78 : 0) }
        }
        return ~crc
    }

    @Test func itMatchesThePublishedCheckValues() {
        // "123456789" is the catalogue's check value; the others are RFC 3720's, appendix B.4.
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).reversed().map { UInt8($0) }) == 0x113F_DB5C)
        #expect(CRC32C.checksum([]) == 0)
    }

    @Test func everyLengthAndAlignmentAgreesWithTheDefinitionInBothImplementations() {
        let data = pseudoRandomBytes(300, seed: 7)
        data.withUnsafeBytes { all in
            for start in 0..<9 {
                for length in 0...(all.count - start) {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
                    let expected = Self.bitwise(slice)
                    var crc = CRC32C()
                    crc.update(slice)
                    #expect(crc.value == expected, "start \(start), length \(length)")
                    #expect(lifeboat_crc32c_portable(0, slice.baseAddress, slice.count) == expected, "start \(start), length \(length)")
                }
            }
        }
    }

    @Test func updatingPieceByPieceEqualsOnePass() {
        let data = pseudoRandomBytes((1 << 20) + 13, seed: 11)
        let whole = CRC32C.checksum(data)
        #expect(lifeboat_crc32c_portable(0, data, data.count) == whole)
        var pieces = CRC32C()
        var offset = 0
        var size = 1
        data.withUnsafeBytes { all in
            while offset < all.count {
                let end = min(offset + size, all.count)
                pieces.update(UnsafeRawBufferPointer(rebasing: all[offset..<end]))
                offset = end
                size = size * 3 + 1
            }
        }
        #expect(pieces.value == whole)
    }

    @Test func theHeaderFormIsTheBigEndianBytesInBase64() {
        var crc = CRC32C()
        Array("123456789".utf8).withUnsafeBytes { crc.update($0) }
        #expect(crc.base64 == Data([0xE3, 0x06, 0x92, 0x83]).base64EncodedString())
        #expect(crc.base64 == "4waSgw==")
    }

    @Test func x86MachinesUseTheInstruction() {
        #if arch(x86_64)
        #expect(CRC32C.usesInstruction)  // every x86-64 since 2008 has SSE 4.2
        #endif
    }
}
