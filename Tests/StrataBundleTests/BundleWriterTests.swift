import Foundation
import StrataBundle
import StrataCore
import StrataCrypto
import StrataTestSupport
import XCTest

/// Bundles of an arbitrary file named delta.sqlite3 (the bundle layer does not read SQLite).
final class BundleWriterTests: XCTestCase {
    static let runId = "20260101T000000000Z-00aa11bb22cc"

    /// A pseudo-random file of `size` bytes (compressible but not trivially).
    static func makeDelta(_ path: String, size: Int = 300_000) throws {
        var bytes = [UInt8](repeating: 0, count: size)
        var x: UInt32 = 12345
        for i in 0..<size {
            x = x &* 1_103_515_245 &+ 12345
            bytes[i] = UInt8(truncatingIfNeeded: x >> 24) & 0x3f
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func bundle(_ dir: TempDir, name: String = "delta.tar.gz") throws -> BundleInfo {
        let delta = dir.file("delta.sqlite3")
        if !FileManager.default.fileExists(atPath: delta) { try makeDelta(delta) }
        return try BundleWriter.write(
            deltaFile: delta, runId: runId, collection: "lines", dimension: 4, upserts: 7,
            deletes: 2, to: dir.file(name))
    }

    func testDeterministicBytesWithoutGzipTimestamp() throws {
        let dir = TempDir()
        let a = try Self.bundle(dir, name: "a.tar.gz")
        let b = try Self.bundle(dir, name: "b.tar.gz")
        let bytesA = try Data(contentsOf: URL(fileURLWithPath: a.path))
        let bytesB = try Data(contentsOf: URL(fileURLWithPath: b.path))
        XCTAssertEqual(bytesA, bytesB)
        XCTAssertEqual(a.sha256, b.sha256)
        XCTAssertEqual(a.sha256, SHA256.hex(bytesA))
        XCTAssertEqual(a.size, Int64(bytesA.count))
        // gzip header: magic, deflate, no flags (so no file name), MTIME zero.
        XCTAssertEqual(Array(bytesA.prefix(8)), [0x1f, 0x8b, 8, 0, 0, 0, 0, 0])
        XCTAssertFalse(FileManager.default.fileExists(atPath: a.path + ".partial"))
        // A different delta gives different bytes.
        try Self.makeDelta(dir.file("delta.sqlite3"), size: 300_001)
        XCTAssertNotEqual(try Self.bundle(dir, name: "c.tar.gz").sha256, a.sha256)
    }

    func testExtractRoundTrip() throws {
        let dir = TempDir()
        let info = try Self.bundle(dir)
        XCTAssertEqual(info.manifest.files.first?.size, 300_000)
        let out = dir.file("out")
        let x = try BundleExtractor.extract(
            bundle: info.path, into: out, expectedRunId: Self.runId,
            expectedCollection: "lines")
        XCTAssertEqual(x.manifest, info.manifest)
        XCTAssertEqual(x.manifest.upserts, 7)
        XCTAssertEqual(x.manifest.deletes, 2)
        XCTAssertEqual(x.compressedBytes, info.size)
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: x.deltaPath)),
            try Data(contentsOf: URL(fileURLWithPath: dir.file("delta.sqlite3"))))
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: out).sorted(),
            ["delta.sqlite3", "manifest.json"])
    }

    func testGNUTarAndGzipReadIt() throws {
        let dir = TempDir()
        let info = try Self.bundle(dir)
        XCTAssertEqual(try TestPaths.run(["gzip", "-t", info.path]).status, 0)
        let list = try TestPaths.run(["tar", "-tvzf", info.path, "--numeric-owner"])
        XCTAssertEqual(list.status, 0, list.stderr)
        let lines = list.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[0].hasPrefix("-rw-r--r-- 0/0") && lines[0].hasSuffix(" delta.sqlite3"), String(lines[0]))
        XCTAssertTrue(lines[1].hasSuffix(" manifest.json"), String(lines[1]))
        try FileManager.default.createDirectory(atPath: dir.file("gnu"), withIntermediateDirectories: false)
        let x = try TestPaths.run(["tar", "-xzf", info.path, "-C", dir.file("gnu")])
        XCTAssertEqual(x.status, 0, x.stderr)
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: dir.file("gnu/delta.sqlite3"))),
            try Data(contentsOf: URL(fileURLWithPath: dir.file("delta.sqlite3"))))
        let manifest = try Data(contentsOf: URL(fileURLWithPath: dir.file("gnu/manifest.json")))
        XCTAssertEqual(manifest, info.manifest.encoded())
        let json = try JSONSerialization.jsonObject(with: manifest) as? [String: Any]
        XCTAssertEqual(json?["format"] as? String, "strata-delta-bundle")
        XCTAssertEqual(json?["format_version"] as? Int, 1)
        XCTAssertEqual(json?["run_id"] as? String, Self.runId)
        XCTAssertEqual(
            (json?["files"] as? [[String: Any]])?.first?["sha256"] as? String,
            try SHA256.hexOfFile(atPath: dir.file("delta.sqlite3")).hex)
    }

    func testMissingDeltaIsAnIOError() throws {
        let dir = TempDir()
        XCTAssertThrowsError(
            try BundleWriter.write(
                deltaFile: dir.file("nope"), runId: Self.runId, collection: "lines",
                dimension: 4, upserts: 0, deletes: 0, to: dir.file("b.tar.gz"))
        ) {
            XCTAssertEqual(($0 as? StrataError)?.kind, .io)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("b.tar.gz")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("b.tar.gz.partial")))
    }
}
