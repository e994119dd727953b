import Testing
@testable import LifeboatCore
@Test func placeholder() { #expect(Manifest.currentFormat == 1) }
