import Foundation
import StrataDelta
import XCTest

/// The scanner's fast decimal path must give exactly what strtof gives, bit for bit.
final class FloatFastPathTests: XCTestCase {
    func parse(_ text: String) -> Float {
        var bytes = Array(text.utf8) + [0x20]  // the scanner may write a terminator after the number
        return bytes.withUnsafeMutableBufferPointer { buf in
            JSONScanner(base: buf.baseAddress!, count: buf.count - 1).float32(0..<(buf.count - 1))
        }
    }

    func testMatchesStrtofBitForBit() {
        var rng = SystemRandomNumberGenerator()
        var cases = [
            "0", "-0", "0.0", "-0.0", "1", "16777216", "16777217", "16777215.5", "0.1", "0.3", "-0.179605",
            "3.4028235e38", "1e-45", "1.5e3", "123456789", "0.0000000001", "0.00000000001",
            "1.2345678901", "9999999.999", "0.16777216", "0.16777217", "1677721.6", "-16777216",
        ]
        for _ in 0..<200_000 {
            let digits = Int.random(in: 1...9, using: &rng)
            let m = UInt64.random(in: 0..<UInt64(pow(10, Double(digits))), using: &rng)
            let k = Int.random(in: 0...12, using: &rng)
            var s = String(m)
            if k > 0 {
                if s.count <= k { s = String(repeating: "0", count: k - s.count + 1) + s }
                s.insert(".", at: s.index(s.endIndex, offsetBy: -k))
            }
            cases.append(Bool.random(using: &rng) ? "-" + s : s)
        }
        // And the repr of random floats, as JSON writers print them.
        for _ in 0..<50_000 { cases.append(String(Float.random(in: -4...4, using: &rng))) }
        var mismatches: [String] = []
        for c in cases {
            let expected = strtof(c, nil)
            let got = parse(c)
            if got.bitPattern != expected.bitPattern { mismatches.append("\(c): \(got) vs strtof \(expected)") }
            if mismatches.count > 10 { break }
        }
        XCTAssertEqual(mismatches, [])
    }
}
