"""Plots and images through jupyter_client: plot, scatter and hist send display_data
with image/svg+xml that parses as XML (with the expected series and legend), imshow
and imgrid send image/png that decodes (signature, IHDR size, CRCs, inflated IDAT of
the right length), each with a text/plain fallback; fit's live picture (one display id
updated in place, with an SVG plot and an epoch table in its HTML)."""
import base64
import struct
import unittest
import xml.etree.ElementTree as ET
import zlib

from kiln_testing import run, start, stop

SVG = "{http://www.w3.org/2000/svg}"


def blobs(seed, spread):
    """A cell defining 3,000 points in 4 Gaussian blobs (centres spread apart by spread),
    a linear model and its AdamW optimiser: what fit and lr_find train in these tests."""
    return f"""
seed({seed});
tensor centers = randn(4, 8) * {spread};
tensor y = randint(0, 4, 3000);
tensor x = centers[y] + randn(3000, 8);
tensor w = param(randn(8, 4) * 0.3);
tensor b = param(zeros(4));
tensor model(tensor xb) {{ return xb @ w + b; }}
int opt = adamw(w, b);
"""


def png_info(data):
    """(width, height, colour type, raw bytes) of a PNG, checking every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    at, idat, ihdr, chunks = 8, b"", None, []
    while at < len(data):
        (n,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + n]
        (crc,) = struct.unpack(">I", data[at + 8 + n:at + 12 + n])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append(kind)
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        at += 12 + n
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND", chunks
    width, height, depth, colour = ihdr[:4]
    assert depth == 8
    return width, height, colour, zlib.decompress(idat)


class TestDisplay(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.km, cls.kc = start()
        run(cls.kc, "seed(1); tensor x = linspace(0, 6.28, 64);")

    @classmethod
    def tearDownClass(cls):
        stop(cls.km, cls.kc)

    def display(self, code):
        r = run(self.kc, code)
        self.assertEqual(r.status, "ok", r.errors)
        shown = r.of_type("display_data")
        self.assertEqual(len(shown), 1, r)
        return shown[0]["content"]["data"]

    def svg(self, code, plain):
        data = self.display(code)
        self.assertEqual(data["text/plain"], plain)
        root = ET.fromstring(data["image/svg+xml"])
        self.assertEqual(root.tag, SVG + "svg")
        return root

    def series(self, root):
        return [e for e in root.iter() if e.get("class") == "series"]

    def texts(self, root):
        return [e.text for e in root.iter(SVG + "text")]

    def test_plot(self):
        root = self.svg("plot(sin(x));", "<plot: 1 series, 64 points>")
        self.assertEqual(len(self.series(root)), 1)
        self.assertEqual(self.series(root)[0].tag, SVG + "path")
        self.assertIn("-1.0", self.texts(root))  # y ticks at steps of 0.5
        self.assertIn("0.5", self.texts(root))
        self.assertFalse([e for e in root.iter() if e.get("class") == "legend"])

    def test_plot_several_series_with_legend(self):
        root = self.svg('plot(x, stack(sin(x), cos(x), x / 6, 1), "sin, cos, ramp", "three");',
                        "<plot: 3 series, 64 points>")
        series = self.series(root)
        self.assertEqual(len(series), 3)
        self.assertEqual(len({s.get("stroke") for s in series}), 3)  # distinct colours
        legend = [e for e in root.iter() if e.get("class") == "legend"]
        self.assertEqual(len(legend), 1)
        self.assertEqual([t.text for t in legend[0].iter(SVG + "text")], ["sin", "cos", "ramp"])
        self.assertIn("three", self.texts(root))

    def test_scatter_and_hist(self):
        root = self.svg("scatter(randn(40), randn(40));", "<scatter: 1 series, 40 points>")
        self.assertEqual(len(list(self.series(root)[0].iter(SVG + "circle"))), 40)
        root = self.svg("hist(randn(500), 15);", "<hist: 500 values, 15 bins>")
        bars = list(self.series(root)[0].iter(SVG + "rect"))
        self.assertEqual(len(bars), 15)
        self.assertEqual(sum(1 for b in bars if float(b.get("height")) >= 0), 15)

    def png(self, code, plain):
        data = self.display(code)
        self.assertEqual(data["text/plain"], plain)
        return png_info(base64.b64decode(data["image/png"]))

    def test_imshow_grey_and_rgb(self):
        w, h, colour, raw = self.png("imshow(rand(28, 28));", "<image: 28x28 grey, shown at 224x224>")
        self.assertEqual((w, h, colour), (224, 224, 0))
        self.assertEqual(len(raw), h * (w + 1))
        w, h, colour, raw = self.png("imshow(rand(10, 20, 3));", "<image: 20x10 RGB, shown at 240x120>")
        self.assertEqual((w, h, colour), (240, 120, 2))
        self.assertEqual(len(raw), h * (3 * w + 1))

    def test_imshow_normalises(self):
        w, h, _, raw = self.png("imshow({{0.0, 1.0}, {2.0, 3.0}});", "<image: 2x2 grey, shown at 224x224>")
        rows = [raw[y * (w + 1) + 1:(y + 1) * (w + 1)] for y in range(h)]
        self.assertEqual((rows[0][0], rows[0][-1], rows[-1][0], rows[-1][-1]), (0, 85, 170, 255))

    def test_imgrid(self):
        w, h, colour, _ = self.png("imgrid(rand(16, 28, 28));",
                                   "<image grid: 16 images of 28x28 grey, 4 columns, 458x458>")
        self.assertEqual((w, h, colour), (458, 458, 0))
        w, h, _, _ = self.png("imgrid(rand(6, 1, 28, 28), 3);",
                              "<image grid: 6 images of 28x28 grey, 3 columns, 344x230>")
        self.assertEqual((w, h), (344, 230))

    def test_errors_are_errors(self):
        r = run(self.kc, "imshow(rand(5));")
        self.assertEqual(r.status, "error")
        self.assertEqual(r.content["ename"], "ShapeError")
        self.assertFalse(r.of_type("display_data"))


if __name__ == "__main__":
    unittest.main()


class TestFitLivePicture(unittest.TestCase):
    """fit's progress is one display, shown once and then updated in place through the
    same display id: text/plain the progress line; text/html a progress bar, an SVG plot
    of the smoothed training loss per step and the validation loss per epoch (well-formed,
    two series), and a table of the finished epochs; the epoch lines stay in the stream."""

    def test_one_display_updated_with_plot_and_table(self):
        km, kc = start()
        try:
            r = run(kc, blobs(1, 3.0) + "fit(model, opt, x[0:2500], y[0:2500], x[2500:3000], y[2500:3000], 3, 16);",
                    timeout=120)
            self.assertEqual(r.status, "ok", r.outputs)
        finally:
            stop(km, kc)
        shown = [m for m in r.of_type("display_data") if "kiln-fit" in m["content"]["transient"].get("display_id", "")]
        updates = r.of_type("update_display_data")
        self.assertEqual(len(shown), 1)
        ident = shown[0]["content"]["transient"]["display_id"]
        self.assertGreaterEqual(len(updates), 3)  # at least each epoch's end
        self.assertTrue(all(u["content"]["transient"]["display_id"] == ident for u in updates))
        last = updates[-1]["content"]["data"]
        self.assertIn("step 468/468", last["text/plain"])  # 3 epochs of 2500 // 16
        html = ET.fromstring(last["text/html"])
        self.assertEqual(html.find("div/progress").get("value"), "468")
        svg = html.find(SVG + "svg")
        self.assertIsNotNone(svg)
        series = [e for e in svg.iter() if e.get("class") == "series"]
        self.assertEqual(len(series), 2)  # training loss, validation loss
        rows = html.findall("table/tr")
        self.assertEqual(len(rows), 1 + 3)
        self.assertEqual([td.text for td in rows[1]][0], "1")
        # the first display has no plot yet, only the bar
        first = ET.fromstring(shown[0]["content"]["data"]["text/html"])
        self.assertIsNone(first.find(SVG + "svg"))
        self.assertEqual(r.stream().count("val accuracy"), 3)


class TestLrFindChart(unittest.TestCase):
    """lr_find's chart: well-formed SVG with the losses per step, the smoothed curve, and
    the suggestion, the minimum, the steepest descent and the valley each marked and named
    in the legend; the text/plain form names the same rate."""

    def test_chart_marks_the_choice_and_the_alternatives(self):
        km, kc = start()
        try:
            r = run(kc, blobs(0, 0.7) + "lr_find(model, opt, x, y, 32)", timeout=60)
            self.assertEqual(r.status, "ok", r.outputs)
        finally:
            stop(km, kc)
        data = r.of_type("display_data")[0]["content"]["data"]
        svg = ET.fromstring(data["image/svg+xml"])
        series = [e for e in svg.iter() if e.get("class") == "series"]
        self.assertEqual(len(series), 6)
        texts = " ".join(t.text or "" for t in svg.iter(SVG + "text"))
        for name in ("loss per step", "smoothed", "suggested", "minimum", "steepest", "valley"):
            self.assertIn(name, texts)
        head = data["text/plain"].splitlines()[0]
        rate = head.split("suggested learning rate ")[1].split()[0]
        self.assertIn("suggested " + rate, texts)  # the title names the rate
        self.assertEqual("%.3g" % float(r.result), rate)
