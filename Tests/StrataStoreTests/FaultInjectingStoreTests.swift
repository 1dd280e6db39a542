import Foundation
import StrataCore
import StrataFileStore
import StrataTestSupport
import XCTest

/// The fault decorator itself, on the file store: each fault does what it says to the store and
/// to the caller, the seed replays, and the switches and filters hold.
final class FaultInjectingStoreTests: XCTestCase {
    var dir: TempDir!
    var file: FileStore!

    override func setUpWithError() throws {
        dir = TempDir(prefix: "strata-faults")
        file = try FileStore(root: URL(fileURLWithPath: dir.path))
    }

    private func body(_ n: Int = 1000) -> Data { Data((0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7) }) }

    private func storeError(_ block: () throws -> Void) -> StoreError? {
        do { try block() } catch let e as StoreError { return e } catch { XCTFail("not a StoreError: \(error)") }
        return nil
    }

    func testFaultsBeforeTheRequestChangeNothingAndAreRetryable() throws {
        for (fault, kind, status) in [
            (FaultInjectingStore.Fault.serverError, StoreError.Kind.transient, 500),
            (.throttled, .throttled, 503), (.connectionReset, .transient, nil),
        ] {
            let s = FaultInjectingStore(file)
            let k = "before/\(fault.rawValue)"
            s.inject(fault, on: [.put], key: k)
            let e = try XCTUnwrap(storeError { try s.put(k, data: body()) }, "\(fault)")
            XCTAssertEqual(e.kind, kind, "\(fault)")
            XCTAssertEqual(e.status, status, "\(fault)")
            XCTAssertTrue(e.isRetryable, "\(fault)")
            XCTAssertNil(try file.head(k), "\(fault): nothing may be written")
            XCTAssertEqual(s.count(fault, on: .put), 1)
            // The rule was used up: the retry succeeds.
            try s.put(k, data: body())
            XCTAssertEqual(try file.getData(k).data, body())
            XCTAssertEqual(s.counts, [fault: 1])
        }
    }

    func testAmbiguousSuccessWritesAndReportsARetryableError() throws {
        let s = FaultInjectingStore(file)
        s.inject(.ambiguousSuccess, on: [.put], times: 1)
        let e = try XCTUnwrap(storeError { try s.put("amb", data: body(), condition: .ifNoneMatch) })
        XCTAssertTrue(e.isRetryable, "\(e)")
        XCTAssertEqual(try file.getData("amb").data, body(), "the write happened")
        // A create-only retry of the same write now meets its own object.
        XCTAssertEqual(
            storeError { try s.put("amb", data: self.body(), condition: .ifNoneMatch) }?.kind,
            .preconditionFailed)
        s.inject(.ambiguousSuccess, on: [.delete], times: 1)
        XCTAssertTrue(storeError { try s.delete("amb") }?.isRetryable ?? false)
        XCTAssertNil(try file.head("amb"), "the delete happened")
        XCTAssertEqual(s.count(.ambiguousSuccess), 2)
    }

    func testTruncatedAndShortReads() throws {
        try file.put("obj", data: body(1000))
        let s = FaultInjectingStore(file)
        let dest = dir.file("out")
        s.inject(.truncatedRead, on: [.get])
        let e = try XCTUnwrap(storeError { try s.get("obj", toFile: dest) })
        XCTAssertTrue(e.isRetryable)
        XCTAssertTrue(e.message.contains("500 of 1000"), e.message)
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: dest)), body(1000).prefix(500),
            "a read that failed mid-body leaves the first part")
        s.inject(.truncatedRead, on: [.getData])
        XCTAssertTrue(storeError { _ = try s.getData("obj") }?.isRetryable ?? false)

        s.inject(.shortRead, on: [.get])
        let info = try s.get("obj", toFile: dest)
        XCTAssertEqual(info.size, 1000, "the info still describes the whole object")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dest)).count, 500)
        s.inject(.shortRead, on: [.getData])
        XCTAssertEqual(try s.getData("obj").data, body(1000).prefix(500))
        // Once the rules are used up, reads are whole.
        XCTAssertEqual(try s.getData("obj").data, body(1000))
        XCTAssertEqual(s.counts, [.truncatedRead: 2, .shortRead: 2])
    }

    func testStaleReadAndTruncatedWrite() throws {
        try file.put("there", data: body())
        let s = FaultInjectingStore(file)
        s.inject(.staleRead, key: "there", times: 3)
        XCTAssertNil(try s.head("there"))
        XCTAssertEqual(storeError { _ = try s.getData("there") }?.kind, .notFound)
        XCTAssertEqual(storeError { try s.get("there", toFile: self.dir.file("x")) }?.kind, .notFound)
        XCTAssertNotNil(try s.head("there"))

        s.inject(.truncatedWrite, on: [.put])
        let src = dir.file("src")
        try body(800).write(to: URL(fileURLWithPath: src))
        let put = try s.put("half", file: src)
        XCTAssertEqual(put.size, 400)
        XCTAssertEqual(try file.getData("half").data, body(800).prefix(400))
    }

    func testSameSeedReplaysDifferentSeedDiffers() throws {
        func run(_ seed: UInt64) throws -> [String] {
            let d = TempDir(prefix: "strata-faults-seed")
            let s = FaultInjectingStore(
                try FileStore(root: URL(fileURLWithPath: d.path)), seed: seed,
                rates: .init([
                    .serverError: 0.2, .throttled: 0.1, .ambiguousSuccess: 0.1,
                    .staleRead: 0.1,
                ]))
            for i in 0..<200 {
                _ = try? s.put("k\(i % 17)", data: Data("\(i)".utf8))
                _ = try? s.head("k\(i % 13)")
            }
            return s.events.map(\.description)
        }
        let a = try run(42)
        XCTAssertEqual(a, try run(42))
        XCTAssertNotEqual(a, try run(43))
        XCTAssertGreaterThan(a.count, 40, "about a third of 400 calls fail")
    }

    func testRatesAreHonouredAndEveryFailedPutLeavesNoObject() throws {
        let s = FaultInjectingStore(file, seed: 7)
        s.setRates(.init([.serverError: 0.3]), for: [.put])
        var failed: [String] = []
        for i in 0..<1000 {
            let k = "r/\(i)"
            if (try? s.put(k, data: Data("x".utf8))) == nil { failed.append(k) }
        }
        XCTAssertEqual(failed.count, s.count(.serverError, on: .put))
        XCTAssertTrue((240...360).contains(failed.count), "\(failed.count) of 1000 at 30%")
        XCTAssertEqual(try file.list(prefix: "r/").count, 1000 - failed.count)
        for k in failed { XCTAssertNil(try file.head(k), k) }
        XCTAssertEqual(s.calls(.put), 1000)
        XCTAssertEqual(s.count(.serverError, on: .head), 0, "rates were set for put only")
    }

    func testSwitchFilterAndConditions() throws {
        let s = FaultInjectingStore(file, rates: .init([.serverError: 1]))
        s.enabled = false
        try s.put("off", data: body())
        XCTAssertEqual(s.counts, [:])
        s.enabled = true
        s.filter = { op, key in op == .put && key.hasPrefix("bad/") }
        try s.put("good/a", data: body())
        XCTAssertNotNil(try s.head("good/a"))
        XCTAssertThrowsError(try s.put("bad/a", data: body()))
        XCTAssertEqual(s.counts, [.serverError: 1])
        XCTAssertEqual(s.events.map(\.key), ["bad/a"])

        s.enabled = false
        s.ignoresConditions = true
        try s.put("good/a", data: Data("replaced".utf8), condition: .ifNoneMatch)
        XCTAssertEqual(try file.getData("good/a").data, Data("replaced".utf8))
        s.ignoresConditions = false
        XCTAssertEqual(
            storeError { try s.put("good/a", data: Data("again".utf8), condition: .ifNoneMatch) }?.kind,
            .preconditionFailed)
    }

    func testLatencyDelaysButDoesNotFail() throws {
        let s = FaultInjectingStore(file, rates: .init([.latency: 1]), latency: 0.001...0.002)
        for i in 0..<20 { try s.put("l/\(i)", data: body(10)) }
        XCTAssertEqual(s.count(.latency, on: .put), 20)
        XCTAssertEqual(s.failuresInjected, 0)
        XCTAssertEqual(try file.list(prefix: "l/").count, 20)
    }
}
