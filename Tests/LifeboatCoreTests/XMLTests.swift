import Testing
@testable import LifeboatCore

@Suite struct MiniXML {
    @Test func readsAListBucketResult() throws {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>acme-dr</Name><Prefix>lifeboat/</Prefix><KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>
              <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
              <Contents><Key>lifeboat/a&amp;b.txt</Key><Size>12</Size><ETag>&quot;abc&quot;</ETag></Contents>
              <Contents><Key>lifeboat/&#233;t&#xE9;</Key><Size>0</Size></Contents>
              <!-- a comment -->
              <Owner/>
            </ListBucketResult>
            """
        let root = try XMLNode.parse(xml)
        #expect(root.name == "ListBucketResult")
        #expect(root["IsTruncated"] == "true")
        #expect(root["NextContinuationToken"] == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        #expect(root.all("Contents").map { $0["Key"] } == ["lifeboat/a&b.txt", "lifeboat/été"])
        #expect(root.all("Contents").first?["ETag"] == "\"abc\"")
        #expect(root.child("Owner")?.children.isEmpty == true)
    }

    @Test func readsAnErrorDocument() throws {
        let root = try XMLNode.parse("<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><AWSAccessKeyId>AKIAEXAMPLE</AWSAccessKeyId></Error>")
        #expect(root["Code"] == "SignatureDoesNotMatch")
        #expect(root["AWSAccessKeyId"] == "AKIAEXAMPLE")
    }

    @Test(arguments: ["", "<a>", "<a></b>", "<a>&bogus;</a>", "<a/><b/>", "text"])
    func malformedDocumentsAreRejected(xml: String) {
        #expect(throws: XMLNode.ParseError.self) { try XMLNode.parse(xml) }
    }

    @Test func escapingRoundTrips() throws {
        let text = "a&b<c>\"d'e\u{1}"
        let root = try XMLNode.parse("<k>\(XMLNode.escape(text))</k>")
        #expect(root.text == text)
    }
}
