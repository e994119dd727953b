import LifeboatArchive
import LifeboatCore
import Testing

/// An artifact with several entries of incompressible data, so damage lands in entry data.
private func sampleArtifact(_ compression: Compression) throws -> BuiltArtifact {
    try buildArtifact(compression: compression) { writer in
        try writer.addDirectory(path: "d", mode: 0o755, modificationTime: 0)
        for index in 0..<6 {
            try addMemoryFile(writer, path: "d/file\(index).bin", pseudoRandomBytes(40_000, seed: UInt64(index + 100)))
        }
        try writer.addSymlink(path: "d/link", target: "file0.bin", modificationTime: 0)
    }
}

@Suite struct Verification {
    @Test(arguments: Compression.allCases)
    func intactArtifactHasNoProblems(compression: Compression) throws {
        let artifact = try sampleArtifact(compression)
        #expect(verifyArtifact(artifact.record, source: artifact.reader()) == [])
        #expect(verifyArtifact(artifact.record, source: artifact.reader(readSize: 1)) == [])
    }

    enum Damage: String, CaseIterable, Sendable {
        case flipFirstByte, flipEarlyByte, flipMiddleByte, flipLastByte
        case truncateHalf, truncateLastByte, truncateToHeader, empty
    }

    @Test(arguments: Damage.allCases, Compression.allCases)
    func damageIsReported(damage: Damage, compression: Compression) throws {
        var artifact = try sampleArtifact(compression)
        let count = artifact.bytes.count
        switch damage {
        case .flipFirstByte: artifact.bytes[0] ^= 0x40
        case .flipEarlyByte: artifact.bytes[20] ^= 0x01
        case .flipMiddleByte: artifact.bytes[count / 2] ^= 0x01
        case .flipLastByte: artifact.bytes[count - 1] ^= 0x01
        case .truncateHalf: artifact.bytes.removeLast(count / 2)
        case .truncateLastByte: artifact.bytes.removeLast()
        case .truncateToHeader: artifact.bytes.removeLast(count - 100)
        case .empty: artifact.bytes.removeAll()
        }
        let problems = verifyArtifact(artifact.record, source: artifact.reader())
        #expect(!problems.isEmpty)
        #expect(problems.allSatisfy { $0.artifact == artifact.record.path })
        // The stored digest always differs.
        #expect(problems.contains { $0.entry == nil && $0.message.contains("SHA-256 mismatch of the stored object") })
        if damage == .flipMiddleByte || damage == .truncateHalf {
            // An entry in the middle is damaged, or was not reached.
            #expect(problems.contains { $0.entry?.hasPrefix("d/file") == true })
        }
        if damage == .truncateHalf {
            #expect(problems.contains { $0.entry == "d/link" })
        }
    }

    @Test func bitFlipInUncompressedDataNamesTheEntry() throws {
        var artifact = try sampleArtifact(.none)
        let target = pseudoRandomBytes(40_000, seed: 103)  // d/file3.bin
        let offset = try #require(firstIndex(of: Array(target[0..<64]), in: artifact.bytes))
        artifact.bytes[offset + 12_345] ^= 0x10
        let problems = verifyArtifact(artifact.record, source: artifact.reader())
        let recorded = try #require(artifact.record.entries.first { $0.path == "d/file3.bin" })
        let entryProblems = problems.filter { $0.entry != nil }
        #expect(entryProblems.count == 1)
        let problem = try #require(entryProblems.first)
        #expect(problem.entry == "d/file3.bin")
        #expect(problem.message.contains("SHA-256 mismatch"))
        #expect(problem.message.contains(recorded.sha256))
        #expect(problem.description.contains(artifact.record.path))
    }

    @Test func unexpectedAndMissingEntriesAreReported() throws {
        var artifact = try sampleArtifact(.zstd)
        artifact.record.entries.removeAll { $0.path == "d/file2.bin" }
        artifact.record.entries.append(EntryRecord(path: "d/ghost", kind: .file, size: 0, sha256: "00"))
        artifact.record.entries[1].size += 1
        let problems = verifyArtifact(artifact.record, source: artifact.reader())
        #expect(problems.contains { $0.entry == "d/file2.bin" && $0.message.contains("not in the record") })
        #expect(problems.contains { $0.entry == "d/ghost" && $0.message.contains("missing from the archive") })
        #expect(problems.contains { $0.entry == "d/file0.bin" && $0.message.contains("40000 bytes") })
        #expect(!problems.contains { $0.entry == nil })
    }

    @Test func storageErrorsAreReportedAndRethrown() throws {
        let artifact = try sampleArtifact(.zstd)
        let failAfter = artifact.bytes.count / 2
        let problems = verifyArtifact(artifact.record, source: artifact.reader(readSize: 4096, failAfter: failAfter))
        #expect(problems.contains { $0.message.contains("connection reset") })
        #expect(problems.contains { $0.entry != nil })

        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let error = try #require(throws: LifeboatError.self) {
            try extractArtifact(artifact.record, source: artifact.reader(readSize: 4096, failAfter: failAfter),
                                to: temporary.path)
        }
        #expect(error.code == .storage)
        #expect(error.message.contains("connection reset"))
    }
}
