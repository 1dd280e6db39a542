// Measures page patches on a snapshot-like SQLite file (Docs/design/0002-page-patch-versions.md,
// "Measurements"). Not a test: figures only. Run through Scripts/bench_pages.sh.
//
//   strata-pages-bench --rows N [--dim 384] [--page-size 8192] [--delta 1000] [--dir DIR] [--keep]
import CSQLite
import Foundation
import StrataCrypto
import StrataDelta
import StrataPages

struct Options {
    var rows = 100_000
    var dim = 384
    var pageSize = 8192
    var delta = 1_000
    var dir = NSTemporaryDirectory() + "strata-pages-bench"
    var keep = false
    var compression = PageCompression.zlib(level: 1)
    var compressionName = "zlib1"
}

var o = Options()
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    func value() -> String {
        guard let v = args.next() else {
            FileHandle.standardError.write(Data("\(a) needs a value\n".utf8))
            exit(2)
        }
        return v
    }
    switch a {
    case "--rows": o.rows = Int(value())!
    case "--dim": o.dim = Int(value())!
    case "--page-size": o.pageSize = Int(value())!
    case "--delta": o.delta = Int(value())!
    case "--dir": o.dir = value()
    case "--keep": o.keep = true
    case "--compression":
        o.compressionName = value()
        switch o.compressionName {
        case "none": o.compression = .none
        case "zero": o.compression = .zeroRun
        case let z where z.hasPrefix("zlib"): o.compression = .zlib(level: Int32(z.dropFirst(4)) ?? 1)
        default:
            FileHandle.standardError.write(Data("--compression none|zero|zlib1...zlib9\n".utf8))
            exit(2)
        }
    default:
        FileHandle.standardError.write(Data("unknown argument \(a)\n".utf8))
        exit(2)
    }
}

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
var rng = SplitMix(state: 42)

func now() -> Double { Date().timeIntervalSince1970 }
func ms(_ s: Double) -> String { String(format: "%.0f ms", s * 1000) }
func mb(_ b: Int64) -> String { String(format: "%.2f MB", Double(b) / 1e6) }
func size(_ p: String) -> Int64 {
    (try? FileManager.default.attributesOfItem(atPath: p)[.size] as? NSNumber)??.int64Value ?? 0
}
func peakRSS() -> Int64 {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Int64(u.ru_maxrss) * 1024
}

@MainActor func upsert(_ db: Database, ids: [String]) throws {
    let st = try db.prepare(
        "INSERT OR REPLACE INTO embeddings(id, embedding, document, metadata) VALUES (?1, ?2, ?3, ?4)")
    var v = [Float](repeating: 0, count: o.dim)
    for id in ids {
        for i in 0..<o.dim { v[i] = Float.random(in: -1...1, using: &rng) }
        try st.bind(1, text: id)
        try v.withUnsafeBytes { try st.bind(2, blob: $0) }
        try st.bind(3, text: "receipt line \(id)")
        try st.bind(4, text: "{\"image_id\":\"\(id.prefix(8))\"}")
        _ = try st.step()
        st.reset()
    }
}

// Random TEXT ids (uuid-like), as the snapshot's primary keys are.
@MainActor func newId() -> String {
    String(format: "%016llx-%016llx", rng.next(), rng.next())
}

try? FileManager.default.removeItem(atPath: o.dir)
try FileManager.default.createDirectory(atPath: o.dir, withIntermediateDirectories: true)
let base = o.dir + "/base.sqlite3"
let live = o.dir + "/live.sqlite3"
print(
    "# strata-pages-bench: \(o.rows) rows x \(o.dim) dims, page size \(o.pageSize), delta \(o.delta) rows, "
        + "compression \(o.compressionName)")
print("SQLite \(String(cString: sqlite3_libversion()))")

var t = now()
var ids: [String] = []
ids.reserveCapacity(o.rows)
do {
    let db = try Database(path: base, mode: .readWriteCreate)
    try db.execute("PRAGMA page_size = \(o.pageSize)")
    try db.execute("PRAGMA journal_mode = OFF")
    try db.execute("PRAGMA synchronous = OFF")
    try db.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    try db.execute(
        "CREATE TABLE embeddings(id TEXT PRIMARY KEY, embedding BLOB NOT NULL, document TEXT, metadata TEXT)")
    try db.execute("INSERT INTO meta VALUES ('row_count', '0')")
    try db.execute("BEGIN")
    var batch: [String] = []
    for _ in 0..<o.rows {
        let id = newId()
        ids.append(id)
        batch.append(id)
        if batch.count == 10_000 {
            try upsert(db, ids: batch)
            batch.removeAll()
        }
    }
    try upsert(db, ids: batch)
    try db.execute("UPDATE meta SET value = '\(o.rows)' WHERE key = 'row_count'")
    try db.execute("COMMIT")
    try db.close()
}
let fileBytes = size(base)
print("generated \(mb(fileBytes)) (\(fileBytes / Int64(o.pageSize)) pages) in \(ms(now() - t))")

func cp(_ from: String, _ to: String) throws -> Double {
    let t = now()
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/cp")
    p.arguments = [from, to]
    try p.run()
    p.waitUntilExit()
    let elapsed = now() - t
    // Flush the copy so later fsyncs (checkpoint, apply) do not pay for cp's dirty pages.
    let f = FileHandle(forUpdatingAtPath: to)!
    try f.synchronize()
    try f.close()
    return elapsed
}
let cpTime = try cp(base, live)
print("cp of the file (reference): \(ms(cpTime))")

t = now()
let hashes = try PageHashList.build(database: live, to: o.dir + "/live.ph")
print("page-hash list built (full pass, once per base): \(ms(now() - t)), \(mb(size(hashes.path)))")

let counter = ["inserts", "upserts", "deletes", "mixed (half new, half overwrites)"]
var patches: [PagePatchSource] = []
print("")
print(
    "| delta | pages changed | raw page bytes | patch | % of file | WAL frames | write | WAL read "
        + "| checkpoint | patch write | capture total |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (i, name) in counter.enumerated() {
    let path = o.dir + "/p\(i).strpatch"
    var bodyTime = 0.0
    let t0 = now()
    let r = try PageCapture.capture(
        database: live, hashes: hashes, patch: path,
        settings: PageCaptureSettings(compression: o.compression)
    ) { db in
        let tb = now()
        try db.execute("BEGIN")
        switch i {
        case 0:
            let fresh = (0..<o.delta).map { _ in newId() }
            ids += fresh
            try upsert(db, ids: fresh)
        case 1:
            try upsert(db, ids: (0..<o.delta).map { _ in ids[Int.random(in: 0..<ids.count, using: &rng)] })
        case 2:
            let st = try db.prepare("DELETE FROM embeddings WHERE id = ?1")
            for _ in 0..<o.delta {
                let k = Int.random(in: 0..<ids.count, using: &rng)
                try st.bind(1, text: ids[k])
                _ = try st.step()
                st.reset()
                ids.swapAt(k, ids.count - 1)
                ids.removeLast()
            }
        default:
            let fresh = (0..<(o.delta / 2)).map { _ in newId() }
            let old = (0..<(o.delta - o.delta / 2)).map { _ in ids[Int.random(in: 0..<ids.count, using: &rng)] }
            ids += fresh
            try upsert(db, ids: fresh + old)
        }
        try db.execute("UPDATE meta SET value = (SELECT count(*) FROM embeddings) WHERE key = 'row_count'")
        try db.execute("COMMIT")
        bodyTime = now() - tb
    }
    let total = now() - t0
    patches.append(PagePatchSource(path: path))
    let h = r.patch.header
    print(
        "| 1,000 \(name) | \(h.frameCount) | \(mb(r.patch.rawPageBytes)) | \(mb(r.patch.bytes)) | "
            + String(format: "%.2f%%", Double(r.patch.bytes) * 100 / Double(size(live)))
            + " | \(r.walFrames) | \(ms(bodyTime)) | \(ms(r.seconds.wal)) | \(ms(r.seconds.checkpoint)) "
            + "| \(ms(r.seconds.patch)) | \(ms(total)) |")
}
print("")
print("capture overhead = capture total - write (WAL parse, checkpoint, back to rollback mode, patch write).")

// A reader holding the base applies the chain in place (what a cache does for the next version).
let held = o.dir + "/held.sqlite3"
_ = try cp(base, held)
let heldList = try PageHashList.build(database: held, to: o.dir + "/held.ph")
t = now()
try PagePatchChain.apply([patches[0]], onto: held, hashes: heldList)
print("apply 1 patch in place (reader one version behind): \(ms(now() - t))")
t = now()
try PagePatchChain.apply(Array(patches[1...]), onto: held, hashes: heldList)
print("apply a chain of 3 patches in place: \(ms(now() - t))")
t = now()
let merged = try PagePatchChain.merge(patches, to: o.dir + "/merged.strpatch", compression: o.compression)
print("k-way merge of the 4 patches: \(ms(now() - t)), \(merged.header.frameCount) pages, \(mb(merged.bytes))")
let rssBefore = peakRSS()
t = now()
try PagePatchChain.materialize(base: base, chain: patches, to: o.dir + "/cold.sqlite3", hashList: o.dir + "/cold.ph")
print(
    "cold materialize base + 4 patches (copy + hash the base, apply, check roots): \(ms(now() - t)); "
        + "cp alone: \(ms(cpTime))")
print("peak RSS of this process: \(mb(peakRSS())) (before cold materialize: \(mb(rssBefore)))")
let same =
    try SHA256.hexOfFile(atPath: o.dir + "/cold.sqlite3").hex == SHA256.hexOfFile(atPath: live).hex
    && SHA256.hexOfFile(atPath: held).hex == SHA256.hexOfFile(atPath: live).hex
print("materialized files byte-identical to the written file: \(same)")
if !o.keep { try? FileManager.default.removeItem(atPath: o.dir) }
if !same { exit(1) }
