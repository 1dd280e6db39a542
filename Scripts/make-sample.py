#!/usr/bin/env python3
"""Turn Demo/receipts.json into producer NDJSON: one file of lines, one of words.

Embeddings stand in for a model's: feature hashing of character trigrams and words into
DIM dimensions, L2-normalised. Deterministic, and similar text gives similar vectors, so
nearest-neighbour queries on the demo data mean something.

Writes OUT_DIR/{image_id}/lines.ndjson and words.ndjson: one directory per OCR job.

With --text-only, rows carry no embedding: `snapctl produce --embed` embeds each row's
document (the line's or the word's real text) through an embeddings server.

usage: make-sample.py RECEIPTS.json OUT_DIR [--dim 384] [--text-only]
"""
import argparse, hashlib, json, math, os, struct

def embed(text, dim):
    v = [0.0] * dim
    t = " " + text.lower() + " "
    feats = [t[i:i + 3] for i in range(len(t) - 2)] + ["w:" + w for w in text.lower().split()]
    for f in feats:
        h = hashlib.sha256(f.encode()).digest()
        idx = struct.unpack("<I", h[:4])[0] % dim
        sign = 1.0 if h[4] & 1 else -1.0
        v[idx] += sign * (2.0 if f.startswith("w:") else 1.0)
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [round(x / n, 6) for x in v]

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("receipts"); ap.add_argument("out")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--text-only", action="store_true")
    a = ap.parse_args()
    vec = (lambda text: None) if a.text_only else (lambda text: embed(text, a.dim))

    def row(rid, text, meta):
        r = {"id": rid, "document": text, "metadata": meta}
        v = vec(text)
        if v is not None:
            r["embedding"] = v
        return json.dumps(r, separators=(",", ":")) + "\n"

    doc = json.load(open(a.receipts))
    for r in doc["receipts"]:
        d = os.path.join(a.out, r["image_id"])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "lines.ndjson"), "w") as lines, open(os.path.join(d, "words.ndjson"), "w") as words:
            base = "IMAGE#%s#RECEIPT#%05d" % (r["image_id"], r["receipt"])
            for ln, text in enumerate(r["lines"], 1):
                lid = "%s#LINE#%05d" % (base, ln)
                meta = {"image_id": r["image_id"], "receipt_id": r["receipt"], "line_id": ln,
                        "text": text, "has_price": any(c.isdigit() for c in text.split()[-1])}
                lines.write(row(lid, text, meta))
                for wn, w in enumerate(text.split(), 1):
                    wid = "%s#WORD#%05d" % (lid, wn)
                    words.write(row(wid, w, {"image_id": r["image_id"], "receipt_id": r["receipt"],
                                             "line_id": ln, "word_id": wn}))

if __name__ == "__main__":
    main()
