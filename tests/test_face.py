"""The face encoder: detection, crops, our FER2013 CNN, bad input."""

import io
import json
import socket

import numpy as np
import pytest
from PIL import Image

from multimodal import EMOTIONS, FaceEncoder, Status
from multimodal.face import FaceResult, prepare_face
from multimodal.face_detection import FaceBox, HaarFaceDetector, square_crop
from multimodal.image_io import downscale, to_rgb

from .conftest import four_faces, needs_data

rng = np.random.default_rng(0)


@pytest.mark.parametrize("name,image,status", [
    ("blank", np.zeros((480, 640, 3), np.uint8), Status.NO_FACE),
    ("white", np.full((480, 640), 255, np.uint8), Status.NO_FACE),
    ("noise", rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), Status.NO_FACE),
    ("tiny", np.zeros((5, 5, 3), np.uint8), Status.NO_FACE),
    ("huge", np.full((4000, 6000, 3), 90, np.uint8), Status.NO_FACE),
    ("grey", rng.integers(0, 256, (300, 300), dtype=np.uint8), Status.NO_FACE),
    ("rgba", np.zeros((200, 200, 4), np.uint8), Status.NO_FACE),
    ("float", rng.random((120, 160, 3)), Status.NO_FACE),
    ("5-d", np.zeros((2, 2, 2, 2, 2)), Status.INVALID),
    ("nan", np.full((50, 50), np.nan), Status.INVALID),
    ("strings", np.array([["a"]]), Status.INVALID),
    ("corrupt bytes", b"\x89PNG\r\n\x1a\nnot really", Status.INVALID),
    ("missing file", "/no/such/face.jpg", Status.INVALID),
    ("wrong type", {"image": 1}, Status.INVALID),
])
def test_synthetic_images_give_statuses_not_exceptions(face_encoder, name, image, status):
    r = face_encoder.predict(image)
    assert r.status == status, (name, r.message)
    assert r.message


def test_input_formats_are_normalised_to_rgb():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    assert to_rgb(grey).shape == (8, 8, 3)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent → composited on white
    assert (to_rgb(rgba) == 255).all()
    pil = Image.fromarray(np.full((6, 7, 3), 10, np.uint8))
    assert to_rgb(pil).shape == (6, 7, 3)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    assert (to_rgb(buf.getvalue()) == 10).all()
    assert to_rgb(np.ones((3, 3))).max() == 255  # float images in 0..1
    small, scale = downscale(np.zeros((4000, 6000, 3), np.uint8))
    assert max(small.shape[:2]) == 1280 and scale == pytest.approx(1280 / 6000)


def test_square_crop_is_centred_and_padded_at_the_border():
    img = np.zeros((100, 100), np.uint8)
    img[40:60, 40:60] = 255
    crop = square_crop(img, FaceBox(40, 40, 20, 20), margin=0.0, size=48)
    assert crop.shape == (48, 48) and crop.mean() > 250
    edge = square_crop(img, FaceBox(90, 90, 20, 20), margin=0.5, size=48)  # runs off the image
    assert edge.shape == (48, 48)


@pytest.fixture(scope="module")
def fer_val(data_dir):
    from multimodal.datasets import load_fer2013

    return load_fer2013(data_dir, "val")


@needs_data
@pytest.mark.parametrize("side", [70, 100, 130, 260])  # in a 640×480 frame: small (second pass) to large (first pass)
def test_large_faces_first_finds_the_same_faces_as_one_pass(fer_val, side):
    import cv2

    images, _ = fer_val
    one_pass, large_first = HaarFaceDetector(large_face_fraction=0), HaarFaceDetector()
    compared = 0
    for i in range(40):
        frame = np.full((480, 640, 3), 120, np.uint8)
        frame[60:60 + side, 300:300 + side] = cv2.resize(images[i], (side, side), interpolation=cv2.INTER_CUBIC)[..., None]
        a, b = prepare_face(frame, one_pass), prepare_face(frame, large_first)
        if hasattr(a, "status"):
            continue
        compared += 1
        assert not hasattr(b, "status"), f"face {i} of side {side} lost by the large-first scan"
        assert abs(a.box.w - b.box.w) <= 0.05 * a.box.w and abs(a.box.x - b.box.x) <= 0.05 * side
    assert compared >= 10


@needs_data
def test_fer2013_validation_sample_accuracy(face_encoder, fer_val):
    images, labels = fer_val
    idx = np.random.default_rng(0).choice(len(labels), 500, replace=False)
    readings = face_encoder.predict_batch([images[i] for i in idx], detect_face=False)
    pred = np.array([EMOTIONS.index(r.top_emotion) for r in readings])
    acc = float(np.mean(pred == labels[idx]))
    assert acc > 0.60, acc


@needs_data
def test_a_face_in_a_webcam_sized_frame_is_found_and_boxed(face_encoder, fer_val):
    import cv2

    images, labels = fer_val
    found = 0
    for i in range(20):
        frame = np.full((480, 640), 110, np.uint8)
        frame[140:340, 220:420] = cv2.resize(images[i], (200, 200), interpolation=cv2.INTER_CUBIC)
        r = face_encoder.predict(np.repeat(frame[:, :, None], 3, axis=2))
        if r.ok:
            found += 1
            x, y, w, h = r.extras["box"]
            assert 180 <= x + w / 2 <= 460 and 100 <= y + h / 2 <= 380
            assert 0 < r.quality <= 1
        else:
            assert r.status == Status.NO_FACE
    assert found >= 14


def test_a_wrong_detector_or_option_fails_when_the_encoder_is_built():
    with pytest.raises(ValueError, match="choose one of haar, mediapipe"):
        FaceEncoder(detector="yolo")
    with pytest.raises(TypeError, match="large_face_fractoin"):
        FaceEncoder(large_face_fractoin=0.25)
    assert FaceEncoder(large_face_fraction=0.25).detector.large_face_fraction == 0.25


@pytest.mark.slow  # builds and loads a transformers model
def test_hub_path_with_a_tiny_local_vit(tmp_path):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    labels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    config = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=37, num_labels=7,
                       id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    ViTForImageClassification(config).save_pretrained(tmp_path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    enc = FaceEncoder(model=str(tmp_path))
    r = enc.predict(np.random.default_rng(2).integers(0, 256, (48, 48), dtype=np.uint8), detect_face=False)
    assert r.ok and r.model == str(tmp_path) and sum(r.probabilities.values()) == pytest.approx(1.0)


def test_an_opencv_without_haar_cascades_gives_a_clear_message(face_encoder, monkeypatch):
    import cv2

    from multimodal import face_detection

    face_detection._cascade.cache_clear()
    monkeypatch.delattr(cv2, "data")  # as in OpenCV 5.x, or after another cv2 distribution overwrote ours
    try:
        with pytest.raises(RuntimeError, match="opencv-python-headless<5"):
            face_detection.HaarFaceDetector().detect(np.zeros((120, 120), np.uint8))
        noise = np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8)
        reading = face_encoder.predict(noise)
        assert not reading.ok and "opencv-python-headless<5" in reading.message
    finally:
        monkeypatch.undo()
        face_detection._cascade.cache_clear()
    assert face_encoder.predict(noise).status.value == "no_face"


def test_blazeface_model_is_downloaded_once_then_cached(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from multimodal.face_detection import blazeface_model

    hits = []

    class Models(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            body = b"TFL3 fake model bytes"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/models/blaze_face_short_range.tflite"
    try:
        path = blazeface_model(url=url, cache_dir=tmp_path)
        assert path == tmp_path / "blaze_face_short_range.tflite" and path.read_bytes().startswith(b"TFL3")
    finally:
        server.shutdown()
        server.server_close()
    assert blazeface_model(url=url, cache_dir=tmp_path) == path and len(hits) == 1  # cached: no second download


def test_blazeface_model_offline_or_missing_gives_a_clear_message(tmp_path, monkeypatch):
    from multimodal.base import InputError
    from multimodal.face_detection import blazeface_model

    monkeypatch.delenv("MOODTUNE_BLAZEFACE", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with pytest.raises(InputError, match="MOODTUNE_BLAZEFACE"):
        blazeface_model(url=f"http://127.0.0.1:{closed_port}/blaze_face_short_range.tflite", cache_dir=tmp_path,
                        timeout=2)
    assert list(tmp_path.iterdir()) == []  # no partial file left behind
    with pytest.raises(InputError, match="no BlazeFace model file"):
        blazeface_model(tmp_path / "nowhere.tflite")
    given = tmp_path / "mine.tflite"
    given.write_bytes(b"x")
    monkeypatch.setenv("MOODTUNE_BLAZEFACE", str(given))
    assert blazeface_model() == given


def test_mediapipe_detector_without_the_extra_says_how_to_install(monkeypatch):
    import importlib.util

    if importlib.util.find_spec("mediapipe") is not None:
        pytest.skip("mediapipe is installed here")
    from multimodal import FaceEncoder

    noise = np.random.default_rng(1).integers(0, 255, (120, 120, 3), dtype=np.uint8)
    reading = FaceEncoder(detector="mediapipe").predict(noise)
    assert not reading.ok and "moodtune[mediapipe]" in reading.message


def test_mediapipe_detector_finds_a_face(data_dir):
    pytest.importorskip("mediapipe", reason="the [mediapipe] extra is not installed")
    import os

    if not os.path.isfile(os.environ.get("MOODTUNE_BLAZEFACE", "")):
        pytest.skip("no BlazeFace model file (set MOODTUNE_BLAZEFACE)")
    from multimodal import FaceEncoder

    import cv2

    face = np.load(data_dir / "face" / "fer2013_val.npz")["images"][0]
    frame = np.full((480, 640, 3), 115, np.uint8)
    frame[140:340, 220:420] = cv2.cvtColor(cv2.resize(face, (200, 200)), cv2.COLOR_GRAY2RGB)
    reading = FaceEncoder(detector="mediapipe").predict(frame)
    assert reading.ok and reading.extras["detector"] == "mediapipe"


def test_mediapipe_extra_keeps_opencv_below_5():
    """mediapipe pulls opencv-contrib-python unpinned; 5.x would overwrite our cv2 and drop the Haar cascades."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    reqs = [Requirement(r) for r in requires("moodtune") or []]
    extra = [r for r in reqs if r.marker and r.marker.evaluate({"extra": "mediapipe"})]
    assert any(r.name == "mediapipe" for r in extra)
    contrib = [r for r in extra if r.name == "opencv-contrib-python"]
    assert contrib and not contrib[0].specifier.contains("5.0.0") and contrib[0].specifier.contains("4.14.0")


def test_recipe_recomputes_batch_norm_from_the_given_images():
    """The SWA stage's batch-norm pass: running means become the images' own means."""
    import torch

    from models.face.train_face import recompute_batch_norm
    from multimodal.face_net import FaceExpressionNet

    net = FaceExpressionNet(width=4)
    first_bn = net.features[0][1]
    first_bn.running_mean.fill_(5.0)
    x = torch.rand(300, 1, 48, 48, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    recompute_batch_norm(net, x, batch=60)  # five batches, one cumulative average
    with torch.no_grad():
        conv_out = net.features[0][0]((x - 0.5) / 0.25)
    assert torch.allclose(first_bn.running_mean, conv_out.mean((0, 2, 3)), atol=1e-4)
    assert first_bn.momentum == 0.1 and not net.training


def test_recipe_train_step_with_sam_applies_the_gradient_taken_at_the_perturbed_weights():
    """SAM: the update is -lr * grad(w + rho * g / |g|) applied to w itself (not to the perturbed weights); sam=0 is
    the plain step."""
    import torch

    from models.face.train_face import train_step

    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 1, bias=False)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    w0 = lin.weight.detach().clone()

    def loss_at(w: torch.Tensor) -> torch.Tensor:
        return ((x @ w.T - y) ** 4).mean()  # not quadratic, so the perturbed gradient differs from the plain one

    g = torch.func.grad(loss_at)(w0)
    w_adv = w0 + 0.1 * g / g.norm()
    expected = w0 - 0.01 * torch.func.grad(loss_at)(w_adv)
    plain = w0 - 0.01 * g
    opt = torch.optim.SGD(lin.parameters(), lr=0.01)
    loss, out = train_step(lin, lambda: (loss_at(lin.weight), lin(x)), opt, sam=0.1)
    assert torch.allclose(lin.weight, expected, atol=1e-6)
    assert not torch.allclose(lin.weight, plain, atol=1e-4)
    assert float(loss) == pytest.approx(float(loss_at(w0))) and out.shape == (8, 1)
    with torch.no_grad():
        lin.weight.copy_(w0)
    train_step(lin, lambda: (loss_at(lin.weight), lin(x)), opt, sam=0.0)  # the recipe's default: a plain step
    assert torch.allclose(lin.weight, plain, atol=1e-6)


def test_shipped_onnx_net_is_the_trained_net():
    """The ONNX file the encoder runs was exported from the shipped safetensors and gives the recipe's logits."""
    import torch
    from safetensors.torch import load_file

    from models.face.train_face import predict_logits
    from multimodal.backbones import file_sha256
    from multimodal.face import FACE_WEIGHTS, FerCnnBackend
    from multimodal.face_net import FaceExpressionNet

    backend = FerCnnBackend()
    props = backend.session.get_modelmeta().custom_metadata_map
    assert props["source_sha256"] == file_sha256(FACE_WEIGHTS), "stale: run python -m models.face.export_onnx"
    net = FaceExpressionNet()
    net.load_state_dict(load_file(str(FACE_WEIGHTS)))
    crops = np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8)
    expected = predict_logits(net, torch.from_numpy(crops).float().div(255).unsqueeze(1)).numpy()
    got = backend.logits(crops)
    assert np.abs(got - expected).max() < 1e-4 * np.abs(expected).max()
    assert (got.argmax(1) == expected.argmax(1)).all()
    assert backend.temperature == pytest.approx(float(props["temperature"]))


@pytest.mark.slow  # a process, a model or many cases: seconds
def test_export_onnx_keeps_the_logits_and_metadata_with_any_batch(tmp_path):
    import torch
    from safetensors.torch import save_file

    from models.face.export_onnx import export_onnx
    from models.face.train_face import predict_logits
    from multimodal.backbones import file_sha256
    from multimodal.face import FerCnnBackend
    from multimodal.face_net import FaceExpressionNet

    net = FaceExpressionNet(width=4).eval()
    weights = tmp_path / "tiny.safetensors"
    save_file(net.state_dict(), str(weights), metadata={"width": "4", "temperature": "1.5"})
    backend = FerCnnBackend(export_onnx(weights))
    x = np.random.default_rng(1).integers(0, 256, (5, 48, 48), dtype=np.uint8)  # the export traced a batch of 2
    expected = predict_logits(net, torch.from_numpy(x).float().div(255).unsqueeze(1)).numpy()
    assert np.allclose(backend.logits(x), expected, atol=1e-5)
    assert backend.temperature == 1.5
    assert backend.session.get_modelmeta().custom_metadata_map["source_sha256"] == file_sha256(weights)


@needs_data
def test_a_tight_face_crop_is_read_without_asking_for_detect_face(face_encoder, fer_val):
    images, labels = fer_val
    readings = face_encoder.predict_batch(list(images[:40]))
    assert all(r.ok for r in readings)  # before: "no face found … crop the photo to the face"
    whole = [i for i, r in enumerate(readings) if "read whole, as a face crop" in r.message]
    assert len(whole) >= 20  # the others have a face the detector finds inside the crop
    direct = face_encoder.predict_batch([images[i] for i in whole], detect_face=False)
    assert np.allclose([readings[i].vector for i in whole], [r.vector for r in direct])


@needs_data
def test_every_face_of_a_group_is_found_read_and_pooled(face_encoder, fer_val):
    from scipy.spatial.distance import jensenshannon

    frame, spots = four_faces(fer_val[0])
    faces = face_encoder.predict_all(frame)
    assert len(faces) == 4
    areas = [f.box[2] * f.box[3] for f in faces]
    ranks = [f.reading.extras["plausibility"] * f.box[2] for f in faces]
    assert ranks == sorted(ranks, reverse=True)  # clearest first (plausibility × side), not largest
    by_size = sorted(faces, key=lambda f: -f.box[2])
    for f, (side, y, x) in zip(by_size, spots):  # each box on its own face
        bx, by, bw, bh = f.box
        assert abs(bx + bw / 2 - (x + side / 2)) < side / 4 and abs(by + bh / 2 - (y + side / 2)) < side / 4
        assert f.reading.ok and f.reading.top_emotion in EMOTIONS
    weights = np.array([a * f.reading.confidence for a, f in zip(areas, faces)])
    expected = (weights / weights.sum()) @ np.stack([f.reading.vector for f in faces])
    group = face_encoder.predict(frame, faces="all")
    np.testing.assert_allclose(group.vector, expected, atol=1e-9)
    spread = sum(w * jensenshannon(f.reading.vector, expected, base=2) ** 2 for w, f in zip(weights / weights.sum(), faces))
    assert group.extras["spread"] == pytest.approx(spread, abs=1e-4) and "4 faces" in group.message
    # the default's quick scan stops at the faces near the camera (here the 160-px one) and reads the clearest of them
    assert face_encoder.predict(frame).extras["box"] == by_size[0].box
    again = [FaceResult.from_dict(json.loads(json.dumps(f.to_dict()))) for f in faces]  # JSON round trip
    assert [(f.box, f.reading.top_emotion) for f in again] == [(f.box, f.reading.top_emotion) for f in faces]
    np.testing.assert_allclose([f.reading.vector for f in again], [f.reading.vector for f in faces], atol=1e-6)


@needs_data
def test_group_mode_through_the_engine_lists_every_face(engine, fer_val):
    frame, _ = four_faces(fer_val[0])
    mood = engine.analyze(image=frame, faces="all")
    assert mood.ok and len(mood.faces) == 4 and len(mood.to_dict()["faces"]) == 4
    assert engine.analyze(image=frame).faces == []  # off by default
    assert engine.analyze(image=np.zeros((480, 640, 3), np.uint8), faces="all").faces == []
    assert engine.face.predict_all(b"not an image") == []
    with pytest.raises(ValueError, match="choose one of largest, all"):
        engine.analyze(image=frame, faces="everyone")


def test_an_option_an_encoder_does_not_take_raises_before_any_model_loads():
    from multimodal import TextEncoder, VoiceEncoder

    with pytest.raises(TypeError, match="unknown option.*detect_fac.*takes detect_face, faces"):
        FaceEncoder().predict(np.zeros((48, 48), np.uint8), detect_fac=False)
    for encoder in (TextEncoder(), VoiceEncoder()):
        with pytest.raises(TypeError, match="unknown option\\(s\\) faces; it takes none"):
            encoder.predict_batch([None], faces="all")
        assert encoder._backend is None  # nothing was loaded for it


def astronaut_head(side: int) -> np.ndarray:
    """scikit-image's public-domain astronaut photo cut to her head, her face ``side`` pixels wide."""
    import cv2
    from skimage.data import astronaut

    pad = 20  # her face box is (174, 66, 98, 98); a fifth of it on each side
    head = astronaut()[66 - pad:164 + pad, 174 - pad:272 + pad]
    return cv2.resize(head, (side * 138 // 98,) * 2, interpolation=cv2.INTER_AREA)


def test_the_person_is_read_not_the_larger_face_like_box_behind_her(face_encoder):
    from skimage.data import astronaut

    photo = astronaut()
    r = face_encoder.predict(photo)
    assert r.ok and r.top_emotion == "happy"  # she smiles; the shuttle model's box read "sad" before
    x, y, w, h = r.extras["box"]
    assert abs(x + w / 2 - 223) < 20 and abs(y + h / 2 - 115) < 20 and r.extras["plausibility"] > 0.9
    group = face_encoder.predict(photo, faces="all")
    assert len(group.extras["faces"]) == 1  # the shuttle's box (level weight 1.6, no eyes) is not a face


def brick_photo() -> np.ndarray:
    """A 4000×3000 RGB photo of scikit-image's brick wall."""
    import cv2
    from skimage.data import brick

    return cv2.cvtColor(cv2.resize(brick(), (4000, 3000)), cv2.COLOR_GRAY2RGB)


def test_small_faces_in_a_12_megapixel_photo_are_found(face_encoder):
    """Faces of 5% and 15% of a 4000×3000 photo's height: the 320-px scan alone saw none of them."""
    photo = brick_photo()
    photo[200:200 + 211, 300:300 + 211] = astronaut_head(150)  # 5% of 3000
    photo[1500:1500 + 633, 2500:2500 + 633] = astronaut_head(450)[:, ::-1]
    group = face_encoder.predict(photo, faces="all")
    centres = sorted((f["box"][0] + f["box"][2] // 2, f["box"][1] + f["box"][3] // 2) for f in group.extras["faces"])
    assert len(centres) == 2
    assert abs(centres[0][0] - 405) < 40 and abs(centres[0][1] - 305) < 40
    assert abs(centres[1][0] - 2816) < 110 and abs(centres[1][1] - 1816) < 110
    grey = np.full((3000, 4000, 3), 128, np.uint8)  # a flat wall: the histogram stretch used to hide the face
    grey[1000:1000 + 422, 1000:1000 + 422] = astronaut_head(300)
    r = face_encoder.predict(grey)  # the default mode scans finer when the quick scan finds nothing
    assert r.ok and abs(r.extras["box"][0] + r.extras["box"][2] / 2 - 1211) < 60


def test_a_textured_photo_without_a_face_has_no_face_at_either_scan(face_encoder):
    import cv2
    from skimage.data import coins, gravel

    for image in (gravel(), coins()):
        large = cv2.resize(image, (2560, 1920), interpolation=cv2.INTER_CUBIC)
        assert face_encoder.predict(large, faces="all").status == Status.NO_FACE
        assert face_encoder.predict(cv2.resize(image, (640, 480)), faces="all").status == Status.NO_FACE
