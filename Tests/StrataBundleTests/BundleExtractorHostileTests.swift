import Foundation
import StrataBundle
import StrataCore
import StrataCrypto
import StrataTestSupport
import XCTest

/// Hostile and damaged bundles, built with Python's tarfile (one Python run for all of them) or
/// by damaging a Strata bundle. Each must be refused with the right reason, and leave nothing
/// behind: not the destination, not a file next to it.
final class BundleExtractorHostileTests: XCTestCase {
    nonisolated(unsafe) static var fixtures: TempDir!
    nonisolated(unsafe) static var fixtureError: String?

    static let script = #"""
        import hashlib, io, json, os, sys, tarfile
        out = sys.argv[1]
        delta = bytes(range(256)) * 1000
        def manifest(d=delta, run="run-1", coll="lines", version=1):
            return json.dumps({"format": "strata-delta-bundle", "format_version": version, "run_id": run,
                "collection": coll, "dimension": 4, "upserts": 1, "deletes": 0,
                "files": [{"name": "delta.sqlite3", "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}]}).encode()
        def reg(name, data):
            ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644; ti.mtime = 1700000000.5
            return (ti, io.BytesIO(data))
        def special(name, kind, link=""):
            ti = tarfile.TarInfo(name); ti.type = kind; ti.linkname = link
            if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE): ti.devmajor, ti.devminor = 1, 3
            return (ti, None)
        def write(fname, entries, mode="w:gz", fmt=tarfile.PAX_FORMAT, **kw):
            with tarfile.open(os.path.join(out, fname), mode, format=fmt, **kw) as t:
                for ti, f in entries: t.addfile(ti, f)
        def good(): return [reg("delta.sqlite3", delta), reg("manifest.json", manifest())]
        write("python-pax.tar.gz", good())
        write("python-gnu.tar.gz", list(reversed(good())), fmt=tarfile.GNU_FORMAT)
        write("python-ustar.tar.gz", good(), fmt=tarfile.USTAR_FORMAT)
        write("abs.tar.gz", [reg("/tmp/strata-evil", b"x")] + good())
        write("dotdot.tar.gz", [reg("../evil", b"x")] + good())
        write("dotdot-nested.tar.gz", [reg("a/../../evil", b"x")] + good())
        write("symlink.tar.gz", [special("delta.sqlite3", tarfile.SYMTYPE, "../../etc/passwd"), good()[1]])
        write("hardlink.tar.gz", [good()[1], special("delta.sqlite3", tarfile.LNKTYPE, "manifest.json")])
        write("fifo.tar.gz", [special("delta.sqlite3", tarfile.FIFOTYPE)] + good())
        write("chardev.tar.gz", [special("delta.sqlite3", tarfile.CHRTYPE)] + good())
        write("dir.tar.gz", [special("data", tarfile.DIRTYPE)] + good())
        write("dup.tar.gz", good() + [reg("manifest.json", manifest())])
        write("unexpected.tar.gz", good() + [reg("README", b"hello")])
        write("nested-name.tar.gz", [reg("x/delta.sqlite3", delta), good()[1]])
        write("missing.tar.gz", [good()[1]])
        write("bad-sha.tar.gz", [good()[0], reg("manifest.json", manifest(d=delta[:-1] + b"\0"))])
        write("v2.tar.gz", [good()[0], reg("manifest.json", manifest(version=2))])
        write("wrong-run.tar.gz", [good()[0], reg("manifest.json", manifest(run="run-2"))])
        write("not-json.tar.gz", [good()[0], reg("manifest.json", b"{nope")])
        write("plain.tar", good(), mode="w")
        write("bz2.tar.bz2", good(), mode="w:bz2")
        class Zeros(io.RawIOBase):
            def __init__(self, n): self.n = n
            def readinto(self, b):
                k = min(len(b), self.n); b[:k] = bytes(k); self.n -= k; return k
        big = tarfile.TarInfo("delta.sqlite3"); big.size = 200 << 20
        write("bomb.tar.gz", [(big, Zeros(big.size)), good()[1]], compresslevel=1)
        """#

    override class func setUp() {
        super.setUp()
        fixtures = TempDir(prefix: "strata-hostile")
        do {
            let r = try TestPaths.run(["python3", "-c", script, fixtures.path])
            if r.status != 0 { fixtureError = "the fixture script failed: \(r.stderr)" }
        } catch {
            fixtureError = "cannot run python3: \(error)"
        }
    }

    override class func tearDown() {
        fixtures = nil
        super.tearDown()
    }

    /// Extracts `bundle` into `<work>/out` and expects `reason`; checks `<work>` is empty after.
    func expectRefused(
        _ bundle: String, _ reason: BundleError.Reason, entry: String? = nil,
        limits: ExtractionLimits = ExtractionLimits(), runId: String? = "run-1",
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let work = TempDir(prefix: "strata-extract")
        XCTAssertThrowsError(
            try BundleExtractor.extract(
                bundle: bundle, into: work.file("out"), expectedRunId: runId,
                expectedCollection: "lines", limits: limits,
                name: "lines/delta/x/delta.tar.gz"),
            file: file, line: line
        ) { e in
            guard let e = e as? BundleError else { return XCTFail("\(e)", file: file, line: line) }
            XCTAssertEqual(e.reason, reason, "\(e)", file: file, line: line)
            if let entry { XCTAssertEqual(e.entry, entry, "\(e)", file: file, line: line) }
            XCTAssertTrue(e.description.contains("lines/delta/x/delta.tar.gz"), "\(e)", file: file, line: line)
        }
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: work.path), [],
            "something was left behind", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/strata-evil"), file: file, line: line)
    }

    func fixture(_ name: String) -> String {
        if let e = Self.fixtureError { XCTFail(e) }
        return Self.fixtures.file(name)
    }

    func testPythonTarfileBundlesAreAccepted() throws {
        for name in ["python-pax.tar.gz", "python-gnu.tar.gz", "python-ustar.tar.gz"] {
            let work = TempDir()
            let x = try BundleExtractor.extract(
                bundle: fixture(name), into: work.file("out"), expectedRunId: "run-1",
                expectedCollection: "lines")
            XCTAssertEqual(x.manifest.upserts, 1, name)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: x.deltaPath)).count, 256_000, name)
        }
    }

    func testPathsAndEntryTypes() {
        expectRefused(fixture("abs.tar.gz"), .absolutePath, entry: "/tmp/strata-evil")
        expectRefused(fixture("dotdot.tar.gz"), .pathTraversal, entry: "../evil")
        expectRefused(fixture("dotdot-nested.tar.gz"), .pathTraversal)
        expectRefused(fixture("symlink.tar.gz"), .symlink, entry: "delta.sqlite3")
        expectRefused(fixture("hardlink.tar.gz"), .hardlink, entry: "delta.sqlite3")
        expectRefused(fixture("fifo.tar.gz"), .notRegularFile, entry: "delta.sqlite3")
        expectRefused(fixture("chardev.tar.gz"), .notRegularFile, entry: "delta.sqlite3")
        expectRefused(fixture("dir.tar.gz"), .notRegularFile, entry: "data/")
    }

    func testEntrySet() {
        expectRefused(fixture("dup.tar.gz"), .duplicateEntry, entry: "manifest.json")
        expectRefused(fixture("unexpected.tar.gz"), .unexpectedEntry, entry: "README")
        expectRefused(fixture("nested-name.tar.gz"), .unexpectedEntry, entry: "x/delta.sqlite3")
        expectRefused(fixture("missing.tar.gz"), .missingEntry, entry: "delta.sqlite3")
    }

    func testManifestChecks() {
        expectRefused(fixture("bad-sha.tar.gz"), .checksumMismatch, entry: "delta.sqlite3")
        expectRefused(fixture("v2.tar.gz"), .unsupportedVersion)
        expectRefused(fixture("wrong-run.tar.gz"), .wrongRun)
        expectRefused(fixture("python-pax.tar.gz"), .wrongRun, runId: "run-9")
        expectRefused(fixture("not-json.tar.gz"), .badManifest)
    }

    func testSizeLimits() {
        expectRefused(
            fixture("python-pax.tar.gz"), .entryTooLarge, entry: "delta.sqlite3",
            limits: ExtractionLimits(maxEntryBytes: 1000))
        expectRefused(
            fixture("python-pax.tar.gz"), .entryTooLarge, entry: "manifest.json",
            limits: ExtractionLimits(maxManifestBytes: 10))
        expectRefused(
            fixture("python-pax.tar.gz"), .expansionLimit,
            limits: ExtractionLimits(maxExpandedBytes: 100_000))
    }

    func testGzipBombIsStoppedEarly() throws {
        let compressed = try FileManager.default.attributesOfItem(atPath: fixture("bomb.tar.gz"))[.size] as! Int
        XCTAssertLessThan(compressed, 2_000_000)  // 200 MB of zeros in well under 2 MB
        expectRefused(fixture("bomb.tar.gz"), .expansionLimit)
        // Also with a total limit only (ratio checks off).
        expectRefused(
            fixture("bomb.tar.gz"), .expansionLimit,
            limits: ExtractionLimits(maxExpandedBytes: 32 << 20, maxExpansionRatio: 1 << 40))
    }

    func testNotGzipAndEmpty() throws {
        expectRefused(fixture("plain.tar"), .notGzip)
        expectRefused(fixture("bz2.tar.bz2"), .notGzip)
        let dir = TempDir()
        _ = FileManager.default.createFile(atPath: dir.file("empty"), contents: Data())
        expectRefused(dir.file("empty"), .empty)
        _ = FileManager.default.createFile(atPath: dir.file("magic-only"), contents: Data([0x1f, 0x8b]))
        expectRefused(dir.file("magic-only"), .truncated)
        // A valid gzip stream of nothing: no entries at all.
        let r = try TestPaths.run(["sh", "-c", "printf '' | gzip -n > '\(dir.file("empty.gz"))'"])
        XCTAssertEqual(r.status, 0)
        expectRefused(dir.file("empty.gz"), .empty)
        // Bytes after the gzip member, and a second member.
        let two = try TestPaths.run([
            "sh", "-c",
            "cat '\(fixture("python-pax.tar.gz"))' > '\(dir.file("garbage"))' && "
                + "printf 'junk-after-the-end' >> '\(dir.file("garbage"))' && "
                + "printf '' | gzip -n > '\(dir.file("second"))' && "
                + "cat '\(fixture("python-pax.tar.gz"))' '\(dir.file("second"))' > '\(dir.file("two"))'",
        ])
        XCTAssertEqual(two.status, 0, two.stderr)
        expectRefused(dir.file("garbage"), .corrupt)
        expectRefused(dir.file("two"), .corrupt)
    }

    func testDamagedStrataBundles() throws {
        let dir = TempDir()
        let info = try BundleWriterTests.bundle(dir)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: info.path))
        func variant(_ name: String, _ edit: (inout Data) -> Void) throws -> String {
            var d = bytes
            edit(&d)
            let p = dir.file(name)
            try d.write(to: URL(fileURLWithPath: p))
            return p
        }
        let run = BundleWriterTests.runId
        // The intact bundle extracts.
        let ok = TempDir()
        XCTAssertNoThrow(
            try BundleExtractor.extract(
                bundle: info.path, into: ok.file("out"), expectedRunId: run,
                expectedCollection: "lines"))

        // Cut in the middle of the data, and just before the trailer.
        expectRefused(try variant("half", { $0 = $0.prefix($0.count / 2) }), .truncated, runId: run)
        expectRefused(try variant("no-trailer", { $0 = $0.prefix($0.count - 8) }), .corrupt, runId: run)
        // CRC32 and ISIZE live in the last 8 bytes, after the tar end marker.
        expectRefused(try variant("bad-crc", { $0[$0.count - 8] ^= 0xff }), .corrupt, runId: run)
        expectRefused(try variant("bad-length", { $0[$0.count - 1] ^= 0x01 }), .corrupt, runId: run)
        // Zero padding after the member (as bsdtar writes) is accepted up to one 10240-byte block.
        let padded = try variant("padded", { $0.append(Data(count: 10000)) })
        let ok2 = TempDir()
        XCTAssertNoThrow(
            try BundleExtractor.extract(
                bundle: padded, into: ok2.file("out"), expectedRunId: run,
                expectedCollection: "lines"))
        expectRefused(try variant("overpadded", { $0.append(Data(count: 20000)) }), .corrupt, runId: run)
        // A flipped byte in the deflate data.
        expectRefused(try variant("bad-deflate", { $0[$0.count / 3] ^= 0x55 }), .corrupt, runId: run)
    }

    func testDestinationMustBeNew() throws {
        let dir = TempDir()
        let info = try BundleWriterTests.bundle(dir)
        try FileManager.default.createDirectory(atPath: dir.file("out"), withIntermediateDirectories: false)
        XCTAssertThrowsError(
            try BundleExtractor.extract(
                bundle: info.path, into: dir.file("out"),
                expectedRunId: nil, expectedCollection: nil)
        ) {
            XCTAssertEqual(($0 as? BundleError)?.reason, .destinationExists)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.file("out")), [])
    }
}
