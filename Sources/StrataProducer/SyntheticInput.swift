import Foundation
import StrataCore
import StrataDelta

/// Synthetic NDJSON input for benchmarks and demos: `rows` upserts of dimension `dimension` with
/// a short document and metadata, deterministic for a seed. Every `deleteEvery`-th line (when
/// positive) is a delete of an earlier id instead. Written in 1 MiB chunks.
public enum SyntheticInput {
    @discardableResult
    public static func write(
        path: String, rows: Int, dimension: Int, seed: UInt64 = 1, deleteEvery: Int = 0,
        idPrefix: String = "row"
    ) throws -> Int64 {
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let fh = FileHandle(forWritingAtPath: path)
        else {
            throw StrataError(.io, object: path, message: "cannot create the file", fix: "check the directory")
        }
        defer { try? fh.close() }
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {  // splitmix64
            state = state &+ 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var out: [UInt8] = []
        out.reserveCapacity(1 << 21)
        var total: Int64 = 0
        for i in 0..<rows {
            if deleteEvery > 0 && i > 0 && i % deleteEvery == 0 {
                out.append(contentsOf: Array("{\"id\":\"\(idPrefix)-\(i / 2)\",\"delete\":true}\n".utf8))
            } else {
                out.append(contentsOf: Array("{\"id\":\"\(idPrefix)-\(i)\",\"embedding\":[".utf8))
                for d in 0..<dimension {
                    if d > 0 { out.append(0x2c) }
                    // A value in (-1, 1) with 6 decimals, as embedding dumps usually look.
                    let v = Int64(next() % 1_999_999) - 999_999
                    if v < 0 { out.append(0x2d) }
                    out.append(contentsOf: [0x30, 0x2e])
                    var m = abs(v)
                    var digits = [UInt8](repeating: 0x30, count: 6)
                    for k in (0..<6).reversed() {
                        digits[k] = 0x30 + UInt8(m % 10)
                        m /= 10
                    }
                    out.append(contentsOf: digits)
                }
                out.append(
                    contentsOf: Array(
                        "],\"document\":\"synthetic line \(i)\",\"metadata\":{\"line\":\(i),\"page\":\(i / 50 + 1),\"source\":\"bench\"}}\n"
                            .utf8))
            }
            if out.count >= 1 << 20 {
                fh.write(Data(out))
                total += Int64(out.count)
                out.removeAll(keepingCapacity: true)
            }
        }
        fh.write(Data(out))
        total += Int64(out.count)
        return total
    }
}
