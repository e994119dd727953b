import Foundation
import Testing
@testable import LifeboatCore

/// `forEachEntry`'s page loop against listings that go round in a circle, as a broken S3
/// service's can: the walk ends with an error instead of listing forever.
@Suite struct ListingWalk {
    static func object(_ key: String) -> ObjectInfo {
        ObjectInfo(key: key, size: 1, etag: "e", modified: Date(timeIntervalSince1970: 0))
    }

    /// Pages by cursor: nil is the first page.
    static func walk(_ pages: [String?: ListPage], limit: Int = 50) throws -> (keys: [String], fetches: Int) {
        var keys: [String] = []
        var fetches = 0
        try walkListing(from: ListRequest(prefix: "p/")) { request in
            fetches += 1
            guard fetches <= limit else { throw LifeboatError(.internalError, "still listing after \(limit) pages") }
            return pages[request.cursor] ?? ListPage()
        } body: { entry in
            if case .object(let object) = entry { keys.append(object.key) }
            return true
        }
        return (keys, fetches)
    }

    /// The guard the S3 loops outside `forEachEntry` (the mirror's source, the health check,
    /// `S3Client.listObjects`) follow their tokens through.
    @Test func cursorsFollowedOnceEachPassAndOneSeenAgainIsRefusedWithTheListingNamed() throws {
        var cursors = ListingCursors(listing: "s3://src/photos/")
        try cursors.follow("a")
        try cursors.follow("b")
        #expect {
            try cursors.follow("a")
        } throws: { error in
            (error as? LifeboatError)?.message.hasPrefix("the listing of s3://src/photos/ came back to a page it had already listed") == true
        }
    }

    @Test func pagesThatEndAreWalkedOnceEach() throws {
        let walked = try Self.walk([nil: ListPage(objects: [Self.object("p/a")], nextCursor: "1"),
                                    "1": ListPage(objects: [Self.object("p/b")], nextCursor: "2"),
                                    "2": ListPage(objects: [Self.object("p/c")])])
        #expect(walked.keys == ["p/a", "p/b", "p/c"] && walked.fetches == 3)
    }

    @Test(arguments: [
        // The same token again (a page that names itself), and two tokens taking turns,
        // with and without objects on the pages.
        [nil: ListPage(objects: [object("p/a")], nextCursor: "x"), "x": ListPage(objects: [object("p/b")], nextCursor: "x")],
        [nil: ListPage(nextCursor: "x"), "x": ListPage(nextCursor: "y"), "y": ListPage(nextCursor: "x")],
        [nil: ListPage(objects: [object("p/a")], nextCursor: "x"), "x": ListPage(objects: [object("p/b")], nextCursor: "y"),
         "y": ListPage(objects: [object("p/c")], nextCursor: "x")],
    ] as [[String?: ListPage]])
    func aListingThatGoesRoundInACircleIsAnErrorNotAnEndlessWalk(pages: [String?: ListPage]) {
        #expect {
            _ = try Self.walk(pages)
        } throws: { error in
            let error = error as? LifeboatError
            return error?.code == .storage && error?.message.contains("came back to a page it had already listed") == true
        }
    }
}

/// `ObjectStore.walkPages`, a static member of a protocol extension, reached through a store type.
private func walkListing(from request: ListRequest, fetch: (ListRequest) throws -> ListPage,
                              body: (ListEntry) throws -> Bool) throws {
    try MemoryStore.walkPages(from: request, fetch: fetch, body)
}
