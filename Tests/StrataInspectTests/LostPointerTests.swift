import Foundation
import StrataCore
import StrataInspect
import StrataTestSupport
import XCTest

/// SPEC invariant 12, as issue 8 found it broken: a collection with history whose applied runs gc
/// has collected loses its pointer. compact must refuse (naming the version that restores it),
/// gc must keep its versions, verify must fail with the command, the command must run as
/// printed, and compaction must then go on with every row. Every test runs on the file store and
/// on SeaweedFS.
final class LostPointerTests: XCTestCase {
    /// Runs `body` on a fresh file store, then on a fresh SeaweedFS bucket.
    func onBothStores(_ hint: String, _ body: (VerifyWorld, String) throws -> Void) throws {
        for fileStore in [true, false] {
            try body(try VerifyWorld(hint, fileStore: fileStore), fileStore ? "file" : "s3")
        }
    }

    func ids(_ prefix: String, _ n: Int) -> [String] { (0..<n).map { "\(prefix)-\($0)" } }

    /// `lines` with three versions (100, then 130, then 142 rows) whose run records gc collected,
    /// and `words` with one. Returns the newest version of `lines`.
    func history(_ w: VerifyWorld) throws -> [String] {
        var versions: [String] = []
        for (prefix, n) in [("a", 100), ("b", 30), ("c", 12)] {
            try w.produce("lines", ids: ids(prefix, n))
            versions.append(try XCTUnwrap(w.compact("lines").newVersion))
        }
        try w.produce("words", ids: ids("w", 4))
        try w.compact("words")
        let gc = try w.snapctl(["gc", "--grace", "0s"])
        XCTAssertEqual(gc.status, 0, gc.stderr)
        XCTAssertEqual(try w.store.list(prefix: w.layout.runsPrefix).count, 0, "gc collected the applied runs")
        XCTAssertEqual(try w.manifest("lines", versions[2]).rowCount, 142)
        return versions
    }

    /// The commands a verify report prints in backticks, split as a shell would (double quotes).
    static func printedCommands(_ report: VerifyReport) -> [[String]] {
        var out: [[String]] = []
        for f in report.findings {
            let text = f.message + " " + (f.hint ?? "")
            let parts = text.components(separatedBy: "`")
            for (i, p) in parts.enumerated() where i % 2 == 1 && p.hasPrefix("snapctl ") {
                let words = shellWords(p)
                if !out.contains(words) { out.append(words) }  // the same advice in two findings runs once
            }
        }
        return out
    }

    static func shellWords(_ s: String) -> [String] {
        var words: [String] = []
        var cur = ""
        var quoted = false
        var any = false
        for ch in s {
            if ch == "\"" {
                quoted.toggle()
                any = true
            } else if ch == " " && !quoted {
                if any || !cur.isEmpty { words.append(cur) }
                cur = ""
                any = false
            } else {
                cur.append(ch)
            }
        }
        if any || !cur.isEmpty { words.append(cur) }
        return words
    }

    /// Runs every command verify printed through the real snapctl; each must succeed.
    func runPrinted(_ o: VerifyWorld.Outcome, _ w: VerifyWorld, file: StaticString = #filePath, line: UInt = #line)
        throws -> [[String]]
    {
        let commands = LostPointerTests.printedCommands(try XCTUnwrap(o.report, file: file, line: line))
        for argv in commands {
            XCTAssertEqual(argv.first, "snapctl", file: file, line: line)
            let r = try w.snapctl(Array(argv.dropFirst()))
            XCTAssertEqual(r.status, 0, "\(argv) runs as printed: \(r.stderr)", file: file, line: line)
        }
        return commands
    }

    func testDeletedPointerIsRestoredNeverRestarted() throws {
        try onBothStores("lostpointer") { w, store in try checkDeletedPointerIsRestoredNeverRestarted(w, store) }
    }

    func checkDeletedPointerIsRestoredNeverRestarted(_ w: VerifyWorld, _ store: String) throws {
        let versions = try history(w)
        let newest = versions[2]
        try w.store.delete(w.layout.pointerKey("lines"))
        try w.produce("lines", ids: ids("d", 10))
        let wordsRun = try w.produce("words", ids: ids("x", 2))

        // compact refuses lines (exit 1, naming the version, its rows and the command); words goes on.
        let compact = try w.snapctl(["compact", "--collection", "lines", "--collection", "words"])
        XCTAssertEqual(compact.status, 1, compact.stdout)
        XCTAssertTrue(compact.stderr.contains("newest complete one is \(newest) (142 rows)"), compact.stderr)
        let command = "snapctl rollback lines \(newest) --reason \"restore the lost pointer\""
        XCTAssertTrue(compact.stderr.contains(command), compact.stderr)
        XCTAssertTrue(compact.stdout.contains("words: published"), compact.stdout)
        XCTAssertTrue(try w.manifest("words", w.pointer("words")).appliedRuns.map(\.runId).contains(wordsRun))
        XCTAssertNil(try w.store.head(w.layout.pointerKey("lines")), "nothing was published for lines")
        XCTAssertEqual(try SnapshotLocator(store: w.store, layout: w.layout).versions("lines"), versions)
        // The refusal is left for verify to show, without logs.
        let status = try w.store.getData(w.layout.compactorStatusKey("lines")).data
        XCTAssertTrue(String(decoding: status, as: UTF8.self).contains("\"state\" : \"refused\""))

        // gc keeps every version of lines, even with --keep 1 and no grace.
        let gc = try w.snapctl(["gc", "--grace", "0s", "--keep", "1"])
        XCTAssertEqual(gc.status, 0, gc.stderr)
        XCTAssertTrue(gc.stdout.contains("lines: every version (3) kept: the pointer is missing"), gc.stdout)
        XCTAssertEqual(try SnapshotLocator(store: w.store, layout: w.layout).versions("lines"), versions)
        for v in versions { XCTAssertNotNil(try w.store.head(w.layout.manifestKey(collection: "lines", version: v))) }

        // verify fails `pointer` with the count, the newest complete version and the command.
        let o = try w.verify(["--collection", "lines"], name: store == "s3" ? "lost-pointer" : nil)
        XCTAssertEqual(o.status, 1)
        let pointer = try XCTUnwrap(o.findings(VerifyCheck.pointer, "lines").first)
        XCTAssertEqual(pointer.status, .failed)
        XCTAssertEqual(pointer.evidence["versions"], .int(3))
        XCTAssertEqual(pointer.evidence["newest_complete_version"], .string(newest))
        XCTAssertEqual(pointer.evidence["newest_complete_rows"], .int(142))
        XCTAssertTrue(pointer.hint?.contains(command) == true, pointer.hint ?? "")
        XCTAssertEqual(o.status(of: VerifyCheck.compactorStatus, "lines"), .failed, o.text(VerifyCheck.pointer))
        XCTAssertTrue(o.text(VerifyCheck.compactorStatus, "lines").contains("newest complete one is \(newest)"))

        // The printed command restores the pointer; compaction goes on with all 142 rows + 10.
        let ran = try runPrinted(o, w)
        XCTAssertTrue(ran.contains(LostPointerTests.shellWords(command)), "\(ran)")
        let restored = try w.pointer("lines")
        XCTAssertGreaterThan(restored, newest, "the pointer moves forward")
        XCTAssertEqual(try w.manifest("lines", restored).rowCount, 142)
        let again = try w.snapctl(["compact", "--collection", "lines", "--json"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(try w.manifest("lines", w.pointer("lines")).rowCount, 152)
        XCTAssertNil(try w.store.head(w.layout.compactorStatusKey("lines")), "a successful round clears the status")
        let healthy = try w.verify(["--collection", "lines"])
        XCTAssertEqual(healthy.status(of: VerifyCheck.pointer, "lines"), .passed, healthy.stdout)
        XCTAssertEqual(healthy.status, 0, healthy.stdout)
    }

    func testUnreadablePointerIsRestoredWithIfMatch() throws {
        try onBothStores("badpointer") { w, store in try checkUnreadablePointerIsRestoredWithIfMatch(w, store) }
    }

    func checkUnreadablePointerIsRestoredWithIfMatch(_ w: VerifyWorld, _ store: String) throws {
        let versions = try history(w)
        try w.store.put(w.layout.pointerKey("lines"), data: Data("<html>oops</html>\n".utf8))
        try w.produce("lines", ids: ids("d", 10))

        let compact = try w.snapctl(["compact", "--collection", "lines"])
        XCTAssertEqual(compact.status, 1, compact.stdout)
        XCTAssertTrue(compact.stderr.contains("is unreadable"), compact.stderr)
        XCTAssertTrue(compact.stderr.contains("snapctl rollback lines \(versions[2]) --reason"), compact.stderr)
        let gc = try w.snapctl(["gc", "--grace", "0s", "--keep", "1"])
        XCTAssertEqual(gc.status, 0, gc.stderr)
        XCTAssertTrue(gc.stdout.contains("lines: every version (3) and every run naming it kept"), gc.stdout)
        XCTAssertEqual(try SnapshotLocator(store: w.store, layout: w.layout).versions("lines"), versions)
        XCTAssertEqual(try w.store.list(prefix: w.layout.runsPrefix).count, 1, "the pending run stays")
        let ls = try w.snapctl(["ls"])
        XCTAssertEqual(ls.status, 0, "ls still lists the store: \(ls.stderr)")

        let o = try w.verify(["--collection", "lines"])
        XCTAssertEqual(o.status(of: VerifyCheck.pointer, "lines"), .failed)
        XCTAssertTrue(o.text(VerifyCheck.pointer, "lines").contains("damaged"), o.text(VerifyCheck.pointer, "lines"))
        XCTAssertEqual(try runPrinted(o, w).count, 1)
        XCTAssertEqual(try w.manifest("lines", w.pointer("lines")).rowCount, 142)
        XCTAssertEqual(try w.snapctl(["compact", "--collection", "lines"]).status, 0)
        XCTAssertEqual(try w.manifest("lines", w.pointer("lines")).rowCount, 152)
    }

    /// The worker stops for the collection whose pointer is lost and goes on with the others.
    func testWorkerSkipsTheLostCollectionAndCompactsTheOthers() throws {
        try onBothStores("lostworker") { w, _ in
            let versions = try history(w)
            try w.store.delete(w.layout.pointerKey("lines"))
            try w.produce("lines", ids: ids("d", 10))
            let run = try w.produce("words", ids: ids("x", 2))
            let r = try w.snapctl(["compactor", "--collections", "lines,words", "--passes", "1", "--poll", "0"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("newest complete one is \(versions[2])"), r.stderr)
            XCTAssertNil(try w.store.head(w.layout.pointerKey("lines")))
            XCTAssertEqual(try SnapshotLocator(store: w.store, layout: w.layout).versions("lines"), versions)
            XCTAssertTrue(try w.manifest("words", w.pointer("words")).appliedRuns.map(\.runId).contains(run))
            XCTAssertNotNil(try w.store.head(w.layout.compactorStatusKey("lines")))
        }
    }

    /// gc never deletes the newest complete version: here the pointer's version lost its file,
    /// so with --keep 1 the version that restores the collection is its parent, and it stays.
    func testGcKeepsTheNewestCompleteVersion() throws {
        try onBothStores("gcnewest") { w, _ in
            let versions = try history(w)
            try w.store.delete(w.snapshotKey("lines", versions[2]))
            let gc = try w.snapctl(["gc", "--grace", "0s", "--keep", "1"])
            XCTAssertEqual(gc.status, 0, gc.stderr)
            let left = try SnapshotLocator(store: w.store, layout: w.layout).versions("lines")
            XCTAssertEqual(left, [versions[1], versions[2]], gc.stdout)
            let o = try w.verify(["--collection", "lines"])
            XCTAssertEqual(o.status(of: VerifyCheck.files, "lines"), .failed)
            XCTAssertEqual(try runPrinted(o, w).count, 1)
            XCTAssertEqual(try w.manifest("lines", w.pointer("lines")).rowCount, 130)
        }
    }

    /// The pointer names a version whose manifest is gone: the hint's rollback runs as printed.
    func testPointerToMissingManifestHintRuns() throws {
        try onBothStores("nomanifest") { w, store in try checkPointerToMissingManifestHintRuns(w, store) }
    }

    func checkPointerToMissingManifestHintRuns(_ w: VerifyWorld, _ store: String) throws {
        let versions = try history(w)
        try w.store.delete(w.layout.manifestKey(collection: "lines", version: versions[2]))
        let o = try w.verify(["--collection", "lines"])
        XCTAssertEqual(o.status(of: VerifyCheck.manifest, "lines"), .failed)
        XCTAssertEqual(try runPrinted(o, w).count, 1)
        XCTAssertEqual(try w.manifest("lines", w.pointer("lines")).rowCount, 130)
        XCTAssertEqual(try w.verify(["--collection", "lines"]).status(of: VerifyCheck.manifest, "lines"), .passed)
    }

    /// The pointer set back to an older version after gc collected the newer version's runs: verify
    /// fails with the command that moves it forward again, and that command runs as printed.
    func testPointerThatLagsIsReportedWithItsCommand() throws {
        try onBothStores("lag") { w, store in try checkPointerThatLagsIsReportedWithItsCommand(w, store) }
    }

    func checkPointerThatLagsIsReportedWithItsCommand(_ w: VerifyWorld, _ store: String) throws {
        let versions = try history(w)
        try w.store.put(w.layout.pointerKey("lines"), data: Pointer.body(version: versions[1]))
        let o = try w.verify(["--collection", "lines"])
        XCTAssertEqual(o.status(of: VerifyCheck.historyUnpublished, "lines"), .failed, o.stdout)
        XCTAssertTrue(o.text(VerifyCheck.historyUnpublished, "lines").contains("the pointer lags"))
        XCTAssertEqual(try runPrinted(o, w).count, 1)
        XCTAssertEqual(try w.manifest("lines", w.pointer("lines")).rowCount, 142)
    }

    /// A first compaction that crashed before its manifest leaves a version directory but no
    /// complete version: that is a new collection still, and compaction proceeds.
    func testIncompleteFirstVersionDoesNotStopANewCollection() throws {
        try onBothStores("firstcrash") { w, store in
            try checkIncompleteFirstVersionDoesNotStopANewCollection(w, store)
        }
    }

    func checkIncompleteFirstVersionDoesNotStopANewCollection(_ w: VerifyWorld, _ store: String) throws {
        let v = Identifiers.make()
        try w.store.put(w.snapshotKey("lines", v), data: Data("half an upload".utf8))
        try w.produce("lines", ids: ids("a", 3))
        let r = try w.snapctl(["compact", "--collection", "lines"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try w.manifest("lines", w.pointer("lines")).rowCount, 3)
    }
}
