import StrataPages
import XCTest

final class PageChainPolicyTests: XCTestCase {
    let policy = PageChainPolicy()
    let single = PageChainPolicy.Patch(bytes: 1_000, merged: false)
    let merged = PageChainPolicy.Patch(bytes: 5_000, merged: true)

    func decide(
        _ chain: [PageChainPolicy.Patch], bytes: Int64 = 1_000, frames: Int = 10, base: Int64 = 1_000_000,
        pageSize: Bool = false, schema: Bool = false
    ) -> PageChainPolicy.Decision {
        policy.decide(
            baseBytes: base, chain: chain, newPatchBytes: bytes, newPatchFrames: frames, pageCount: 1_000,
            pageSizeChanged: pageSize, schemaChanged: schema)
    }

    func testAppendUntilTheTailPassesK() {
        XCTAssertEqual(decide([]), .append)
        XCTAssertEqual(decide(Array(repeating: single, count: 7)), .append)  // the tail becomes K = 8
        XCTAssertEqual(decide(Array(repeating: single, count: 8)), .mergeTail(count: 9))
        // Only the single patches after the last merged one count as the tail.
        XCTAssertEqual(decide([merged] + Array(repeating: single, count: 8)), .mergeTail(count: 9))
        XCTAssertEqual(decide(Array(repeating: single, count: 3) + [merged] + [single]), .append)
    }

    func testMergeAllWhenMergedPatchesPassTheirLimit() {
        let chain = Array(repeating: merged, count: 8) + Array(repeating: single, count: 8)
        XCTAssertEqual(decide(chain, base: 100_000_000), .mergeAll)
        let fewer = Array(repeating: merged, count: 7) + Array(repeating: single, count: 8)
        XCTAssertEqual(decide(fewer, base: 100_000_000), .mergeTail(count: 9))
    }

    func testNewBaseOnShareRewritePageSizeAndSchema() {
        // 0.5 x 1,000,000 bytes: 499,000 + 1,000 stays, 1 byte more is a new base.
        XCTAssertEqual(decide([PageChainPolicy.Patch(bytes: 499_000, merged: false)]), .append)
        XCTAssertEqual(decide([PageChainPolicy.Patch(bytes: 499_001, merged: false)]), .newBase(.patchShare))
        XCTAssertEqual(decide([], frames: 501), .newBase(.rewrite))
        XCTAssertEqual(decide([], frames: 500), .append)
        XCTAssertEqual(decide([], pageSize: true), .newBase(.pageSize))
        XCTAssertEqual(decide([], schema: true), .newBase(.schema))
    }

    func testTheChainStaysBounded() {
        // Simulate 500 publishes of 1 KB patches on a 10 MB base: the chain never passes
        // maxMergedPatches + maxTailLength patches nor the byte share.
        var chain: [PageChainPolicy.Patch] = []
        var bases = 0
        for _ in 0..<500 {
            switch decide(chain, base: 10_000_000) {
            case .append: chain.append(single)
            case .mergeTail(let n):
                let bytes = chain.suffix(n - 1).reduce(single.bytes) { $0 + $1.bytes }
                chain = Array(chain.dropLast(n - 1)) + [PageChainPolicy.Patch(bytes: bytes, merged: true)]
            case .mergeAll:
                chain = [PageChainPolicy.Patch(bytes: chain.reduce(single.bytes) { $0 + $1.bytes }, merged: true)]
            case .newBase:
                chain = []
                bases += 1
            }
            XCTAssertLessThanOrEqual(chain.count, policy.maxMergedPatches + policy.maxTailLength)
            XCTAssertLessThanOrEqual(Double(chain.reduce(0) { $0 + $1.bytes }), 0.5 * 10_000_000)
        }
        XCTAssertEqual(bases, 0)
    }
}
