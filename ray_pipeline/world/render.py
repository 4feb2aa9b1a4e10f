"""Renderer of the procedural world: an articulated figure doing an action in a scene.

A clip is a pure function of a :class:`Scene` (action, environment, character, lighting, camera,
failure mode) and a seed: same inputs, same bytes. The figure is a 2-D skeleton (pelvis, spine,
head, two arms and two legs with elbows and knees) whose joint angles follow a class-specific
motion over time; it is drawn with anti-aliased capsules and circles over an analytic background,
so rendering is a few vectorised numpy passes per shape (see ``bench/bench_world_render.py``).

Coordinates: world units with the ground at y = 0, +x the figure's forward direction and +y up.
A standing adult is about 0.95 units tall. The camera maps a window of world space onto the image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ray_pipeline.world.vocabulary import (
    ACTION_BY_NAME,
    CHARACTER_BY_NAME,
    CHARACTERS,
    COLORS,
    ENV_RGB,
    ENVIRONMENT_BY_NAME,
    ENVIRONMENTS,
    LIGHTING,
    SKIN_TONES,
    Character,
)

PI = np.pi
F32 = np.float32
FAILURE_MODES = ("frozen", "wrong", "garbled")


def rgb(name: str) -> np.ndarray:
    """RGB of a colour name from the vocabulary's palettes."""
    if name in COLORS:
        return np.array(COLORS[name], F32)
    if name in ENV_RGB:
        return np.array(ENV_RGB[name], F32)
    if name in SKIN_TONES:
        return np.array(SKIN_TONES[name], F32)
    raise KeyError(f"unknown colour {name!r}")


# --------------------------------------------------------------------------------------------
# Scene description
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraSpec:
    """How the world is filmed. The default is the generator's clean, centred, static camera."""

    offset_x: float = 0.0  # subject offset from the frame centre, in frame widths
    offset_y: float = 0.0
    zoom: float = 1.0  # >1 films closer
    zoom_drift: float = 0.0  # relative zoom change from first to last frame
    jitter: float = 0.0  # hand-held shake: std of the per-frame offset, in frame widths
    tracking: float = 1.0  # 1 follows a moving subject exactly, 0 keeps the camera still
    mirror: bool = False
    noise: float = 0.0  # std of Gaussian sensor noise on [0, 1] intensities
    color_jitter: float = 0.0  # per-clip white-balance error


@dataclass(frozen=True)
class Scene:
    """Everything that decides a clip besides its seed."""

    action: str | None  # None: the figure just stands (an unknown action)
    environment: str
    character: Character
    lighting: str | None = None  # None: the environment's own lighting
    camera: CameraSpec = CameraSpec()
    speed: float = 1.0
    failure: str | None = None  # one of FAILURE_MODES
    color_variation: float = 0.0  # per-clip shade changes of clothes and skin (real data)


# --------------------------------------------------------------------------------------------
# Keyframes, poses, forward kinematics
# --------------------------------------------------------------------------------------------


def kf(c: np.ndarray, keys: Sequence[tuple[float, float]]) -> np.ndarray:
    """Smoothly interpolated keyframes over c in [0, 1]: cosine easing between (pos, value) keys."""
    xs = np.array([k[0] for k in keys], F32)
    ys = np.array([k[1] for k in keys], F32)
    c = np.clip(np.asarray(c, F32), xs[0], xs[-1])
    i = np.clip(np.searchsorted(xs, c, side="right") - 1, 0, len(xs) - 2)
    w = (c - xs[i]) / np.maximum(xs[i + 1] - xs[i], 1e-6)
    w = (1.0 - np.cos(PI * w)) / 2.0
    return (ys[i] + (ys[i + 1] - ys[i]) * w).astype(F32)


def smoothstep(x: np.ndarray, a: float, b: float) -> np.ndarray:
    t = np.clip((np.asarray(x, F32) - a) / (b - a), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(F32)


POSE_FIELDS = ("x", "lift", "rot", "lean", "head", "sh_r", "sh_l", "el_r", "el_l",
               "hp_r", "hp_l", "kn_r", "kn_l")


class Pose:
    """Joint angles over time (arrays of shape (T,)), radians.

    ``rot`` turns the whole body (counter-clockwise), ``lean`` bends the spine forward, shoulder and
    hip angles swing a limb forward from hanging straight down, elbows bend the forearm forward and
    knees bend the shin backward. ``x``/``lift`` move the body; ``facing`` 0 is a side view, 1 a
    front view (shoulders and hips spread apart).
    """

    def __init__(self, n: int, facing: float = 0.0) -> None:
        z = np.zeros(n, F32)
        self.facing = facing
        self.x, self.lift, self.rot, self.lean, self.head = z.copy(), z.copy(), z.copy(), z.copy(), z.copy()
        spread = 0.12 if facing > 0.5 else 0.06
        self.sh_r, self.sh_l = z + spread, z - spread
        self.el_r, self.el_l = z + 0.12, z - 0.12 if facing > 0.5 else z + 0.12
        self.hp_r, self.hp_l = z + 0.04, z - 0.04
        self.kn_r, self.kn_l = z + 0.04, z + 0.04

    def copy(self) -> Pose:
        p = Pose(len(self.x), self.facing)
        for f in POSE_FIELDS:
            setattr(p, f, getattr(self, f).copy())
        return p

    def set(self, **fields: Any) -> Pose:
        n = len(self.x)
        for k, v in fields.items():
            setattr(self, k, np.broadcast_to(np.asarray(v, F32), (n,)).astype(F32))
        return self

    def blend(self, other: Pose, w: np.ndarray | float) -> Pose:
        out = self.copy()
        for f in POSE_FIELDS:
            a, b = getattr(self, f), getattr(other, f)
            setattr(out, f, (a + (b - a) * w).astype(F32))
        return out


@dataclass(frozen=True)
class Body:
    """Segment lengths and thicknesses (world units) of one character."""

    torso: float
    neck: float
    head_r: float
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    limb_r: float
    torso_r: float
    shoulder_w: float
    hip_w: float

    @classmethod
    def of(cls, ch: Character) -> Body:
        s = ch.height
        build = {"thin": 0.8, "normal": 1.0, "heavy": 1.35}[ch.build]
        head = 0.078 * (1.25 if ch.child else 1.0)
        return cls(torso=0.30 * s, neck=0.045 * s, head_r=head * s, upper_arm=0.155 * s, forearm=0.145 * s,
                   thigh=0.225 * s, shin=0.225 * s, limb_r=0.031 * s * build, torso_r=0.062 * s * build,
                   shoulder_w=0.085 * s * build ** 0.5, hip_w=0.05 * s * build ** 0.5)


def _dir(theta: np.ndarray) -> np.ndarray:
    """The downward unit vector rotated counter-clockwise by theta: (sin, -cos), shape (T, 2)."""
    return np.stack([np.sin(theta), -np.cos(theta)], -1).astype(F32)


def forward_kinematics(p: Pose, b: Body) -> dict[str, np.ndarray]:
    """Joint positions (T, 2) relative to the pelvis, before grounding."""
    n = len(p.x)
    pelvis = np.zeros((n, 2), F32)
    torso_a = p.rot - p.lean  # the spine: "up" rotated by (rot - lean)
    up = -_dir(torso_a)
    side = np.stack([np.cos(torso_a), np.sin(torso_a)], -1).astype(F32)  # body x axis at the chest
    hip_side = np.stack([np.cos(p.rot), np.sin(p.rot)], -1).astype(F32)
    neck = pelvis + up * b.torso
    head = neck + (-_dir(torso_a - p.head)) * (b.neck + b.head_r)
    sw, hw = b.shoulder_w * p.facing, b.hip_w * p.facing
    shoulder = neck - up * 0.03
    j = {"pelvis": pelvis, "neck": neck, "head": head, "up": up, "side": side}
    for s, sign in (("r", 1.0), ("l", -1.0)):
        sh = shoulder + side * (sign * sw)
        elbow = sh + _dir(torso_a + getattr(p, f"sh_{s}")) * b.upper_arm
        hand = elbow + _dir(torso_a + getattr(p, f"sh_{s}") + getattr(p, f"el_{s}")) * b.forearm
        hip = pelvis + hip_side * (sign * hw)
        knee = hip + _dir(p.rot + getattr(p, f"hp_{s}")) * b.thigh
        foot = knee + _dir(p.rot + getattr(p, f"hp_{s}") - getattr(p, f"kn_{s}")) * b.shin
        j.update({f"shoulder_{s}": sh, f"elbow_{s}": elbow, f"hand_{s}": hand, f"hip_{s}": hip,
                  f"knee_{s}": knee, f"foot_{s}": foot})
    return j


Joints = dict[str, np.ndarray]

POINT_JOINTS = ("pelvis", "neck", "head", "shoulder_r", "shoulder_l", "elbow_r", "elbow_l", "hand_r",
                "hand_l", "hip_r", "hip_l", "knee_r", "knee_l", "foot_r", "foot_l")


# --------------------------------------------------------------------------------------------
# Motions: one function per action, (cycles c, progress u, per-clip random amplitude) -> Pose
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MotionSpec:
    """How an action moves: its pose function, cycles per 16-frame clip, view, grounding."""

    fn: Callable[[np.ndarray, np.ndarray, float], Pose]
    cycles: float = 2.0
    facing: float = 0.0
    ground: str = "feet"  # feet | all | none | hang
    travel: float = 0.0  # forward distance covered over a clip (world units)
    props: Callable[[dict[str, np.ndarray], np.ndarray, np.ndarray, Body], list[tuple]] | None = None


def _frac(c: np.ndarray) -> np.ndarray:
    return (c - np.floor(c)).astype(F32)


def _sin(c: np.ndarray, k: float = 1.0, ph: float = 0.0) -> np.ndarray:
    return np.sin(2 * PI * (k * c + ph)).astype(F32)


def _pos(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0).astype(F32)


UPPER_ARM, FOREARM = 0.155, 0.145


def reach(dx: np.ndarray | float, dy: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Two-link inverse kinematics in the torso frame: shoulder and elbow angles that put the
    hand at (dx, dy) from the shoulder (+x forward, +y along the spine), elbow bent forward."""
    dx, dy = np.asarray(dx, F32), np.asarray(dy, F32)
    d = np.clip(np.sqrt(dx * dx + dy * dy), abs(UPPER_ARM - FOREARM) + 1e-3, UPPER_ARM + FOREARM - 1e-3)
    inner = np.arccos(np.clip((UPPER_ARM ** 2 + FOREARM ** 2 - d * d) / (2 * UPPER_ARM * FOREARM), -1, 1))
    alpha = np.arccos(np.clip((UPPER_ARM ** 2 + d * d - FOREARM ** 2) / (2 * UPPER_ARM * d), -1, 1))
    phi = np.arctan2(dx, -dy)
    return (phi - alpha).astype(F32), (PI - inner).astype(F32)


def m_idle(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    return p.set(lean=0.03 * _sin(c, 0.5), sh_r=0.08 + 0.05 * _sin(c, 0.5), sh_l=-0.06 - 0.04 * _sin(c, 0.5))


def m_walk(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    s = _sin(c)
    return p.set(hp_r=0.42 * a * s, hp_l=-0.42 * a * s,
                 kn_r=0.08 + 0.55 * a * _pos(_sin(c, 1, 0.35)), kn_l=0.08 + 0.55 * a * _pos(_sin(c, 1, 0.85)),
                 sh_r=-0.38 * a * s, sh_l=0.38 * a * s, el_r=0.25 + 0.0 * s, el_l=0.25,
                 lift=0.012 * np.abs(np.cos(2 * PI * c)), lean=0.04)


def m_run(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    s = _sin(c)
    return p.set(hp_r=0.75 * a * s + 0.15, hp_l=-0.75 * a * s + 0.15,
                 kn_r=0.3 + 1.25 * a * _pos(_sin(c, 1, 0.3)), kn_l=0.3 + 1.25 * a * _pos(_sin(c, 1, 0.8)),
                 sh_r=-0.75 * a * s, sh_l=0.75 * a * s, el_r=1.55, el_l=1.55, lean=0.30,
                 lift=0.05 * np.abs(_sin(c, 1, 0.0)))


def m_jump(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    f = _frac(c)
    crouch = kf(f, [(0, 0.15), (0.28, 1.0), (0.38, 0.0), (0.72, 0.0), (0.84, 0.9), (1.0, 0.15)])
    air = np.where((f > 0.36) & (f < 0.76), np.sin(PI * np.clip((f - 0.36) / 0.4, 0, 1)), 0).astype(F32)
    arms = kf(f, [(0, 0.0), (0.28, -0.9), (0.42, 2.8 * a), (0.7, 2.4), (0.86, 0.2), (1.0, 0.0)])
    return p.set(hp_r=0.95 * crouch, hp_l=0.95 * crouch, kn_r=1.6 * crouch, kn_l=1.6 * crouch,
                 lean=0.45 * crouch, sh_r=arms, sh_l=arms - 0.1, el_r=0.2, el_l=0.2, lift=0.24 * a * air)


def m_jumping_jack(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 1.0)
    s = (1 - np.cos(2 * PI * c)).astype(F32) / 2
    arm = 0.15 + 2.65 * a * s
    leg = 0.04 + 0.36 * s
    return p.set(sh_r=arm, sh_l=-arm, el_r=0.1, el_l=-0.1, hp_r=leg, hp_l=-leg, kn_r=0.02, kn_l=0.02,
                 lift=0.05 * np.abs(_sin(c, 0.5)))


def m_squat(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    s = (1 - np.cos(2 * PI * c)).astype(F32) / 2 * a
    return p.set(hp_r=1.55 * s, hp_l=1.5 * s, kn_r=2.15 * s, kn_l=2.1 * s, lean=0.7 * s,
                 sh_r=0.1 + 1.45 * s, sh_l=0.05 + 1.45 * s, el_r=0.05, el_l=0.05)


def m_lunge(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    s = (1 - np.cos(2 * PI * c)).astype(F32) / 2 * a
    return p.set(hp_r=0.25 + 0.95 * s, kn_r=0.1 + 1.35 * s, hp_l=-0.25 - 0.35 * s, kn_l=0.1 + 1.45 * s,
                 lean=0.02, sh_r=-0.35, el_r=1.9, sh_l=-0.3, el_l=1.9)


def m_push_up(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    s = (1 - np.cos(2 * PI * c)).astype(F32) / 2 * a
    rot = -1.32 - 0.18 * s
    upper = -1.15 * s  # the upper arm swings back as the chest lowers
    fore = 0.25 * s
    return p.set(rot=rot, sh_r=upper - rot, sh_l=upper - rot - 0.05, el_r=fore - upper, el_l=fore - upper,
                 hp_r=0.0, hp_l=0.02, kn_r=0.0, kn_l=0.0, head=-0.2)


def m_sit_up(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    s = (1 - np.cos(2 * PI * c)).astype(F32) / 2 * a
    rot = np.full(len(c), 1.45, F32)
    return p.set(rot=rot, lean=1.05 * s, hp_r=0.9 + 0.3 * s, hp_l=0.85 + 0.3 * s, kn_r=1.5, kn_l=1.45,
                 sh_r=2.75, sh_l=2.7, el_r=2.2, el_l=2.2, head=0.2 * s)


def m_pull_up(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 1.0)
    s = (1 - np.cos(2 * PI * c)).astype(F32) / 2 * a
    upper = 2.85 - 1.05 * s
    fore = PI + 0.12
    return p.set(sh_r=upper, sh_l=-upper, el_r=fore - upper, el_l=-(fore - upper), hp_r=0.05, hp_l=-0.05,
                 kn_r=0.55 + 0.1 * s, kn_l=0.6 + 0.1 * s)


def m_climb(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 1.0)
    s = _sin(c)
    reach_r = 2.55 + 0.35 * s
    reach_l = 2.55 - 0.35 * s
    return p.set(sh_r=reach_r, sh_l=-reach_l, el_r=0.35 - 0.25 * s, el_l=-(0.35 + 0.25 * s),
                 hp_r=0.35 + 0.3 * _pos(s), hp_l=-(0.35 + 0.3 * _pos(-s)), kn_r=-(0.5 + 0.7 * _pos(s)),
                 kn_l=0.5 + 0.7 * _pos(-s), lift=0.28 * u)


def m_climb_stairs(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    s = _sin(c)
    return p.set(hp_r=0.35 + 0.55 * a * s, hp_l=0.35 - 0.55 * a * s,
                 kn_r=0.3 + 0.9 * a * _pos(s), kn_l=0.3 + 0.9 * a * _pos(-s),
                 sh_r=-0.35 * s, sh_l=0.35 * s, el_r=0.35, el_l=0.35, lean=0.18)


def m_drink(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    f = _frac(c)
    s = kf(f, [(0, 0.0), (0.3, 1.0), (0.7, 1.0), (1.0, 0.0)]) * a
    sh, el = reach(0.06 + 0.04 * (1 - s), -0.24 + 0.37 * s)  # from the hip up to the mouth
    return p.set(sh_r=sh, el_r=el, head=-0.45 * s, lean=-0.08 * s, sh_l=-0.05, el_l=0.15)


def m_eat(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    s = (1 - np.cos(2 * PI * c)).astype(F32) / 2 * a
    sh, el = reach(0.16 - 0.08 * s, -0.02 + 0.14 * s)  # from the bowl to the mouth
    return p.set(sh_r=sh, el_r=el, sh_l=0.45, el_l=1.35, head=0.12 + 0.08 * s, lean=0.12)


def m_brush_hair(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.3)
    s = (1 - np.cos(2 * PI * c)).astype(F32) / 2 * a
    return p.set(sh_r=2.55 - 0.85 * s, el_r=1.75 + 0.2 * s, head=0.15, sh_l=-0.05, el_l=0.15)


def m_brush_teeth(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    s = _sin(c) * a
    sh, el = reach(0.1 + 0.025 * s, 0.12)  # the hand stays at the mouth and scrubs
    return p.set(sh_r=sh, el_r=el, head=0.05, sh_l=-0.05, el_l=0.15, lean=0.1)


def m_wave(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 1.0)
    s = _sin(c)
    return p.set(sh_r=2.45, el_r=0.25 + 0.55 * a * s, sh_l=-0.12, el_l=-0.1)


def m_clap(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 1.0)
    o = (1 + np.cos(2 * PI * c)).astype(F32) / 2 * a  # 0: hands together
    upper = 0.5 + 0.3 * o
    fore = -(2.35 - 0.9 * o)  # forearms point inward and up; the hands meet at the chest
    return p.set(sh_r=upper, sh_l=-upper, el_r=fore - upper, el_l=-(fore - upper))


def m_punch(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    er = _pos(_sin(c)) ** 2 * a
    el = _pos(-_sin(c)) ** 2 * a
    return p.set(sh_r=0.6 + 0.95 * er, el_r=2.0 - 1.95 * er, sh_l=0.55 + 0.95 * el, el_l=2.0 - 1.95 * el,
                 lean=0.15 + 0.1 * (er + el), hp_r=0.28, hp_l=-0.28, kn_r=0.25, kn_l=0.2)


def m_kick(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    f = _frac(c)
    hip = kf(f, [(0, 0.0), (0.25, 1.0), (0.45, 1.85 * a), (0.6, 1.7), (0.85, 0.1), (1.0, 0.0)])
    knee = kf(f, [(0, 0.05), (0.25, 1.7), (0.45, 0.05), (0.6, 0.2), (0.85, 0.3), (1.0, 0.05)])
    lean = kf(f, [(0, 0.05), (0.45, -0.35), (0.85, 0.0), (1.0, 0.05)])
    return p.set(hp_r=hip, kn_r=knee, hp_l=-0.1, kn_l=0.1, lean=lean, sh_r=0.55, el_r=1.9, sh_l=0.4, el_l=1.9)


def m_kick_ball(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    f = _frac(c)
    hip = kf(f, [(0, 0.0), (0.3, -0.7), (0.5, 0.6), (0.65, 1.15 * a), (1.0, 0.0)])
    knee = kf(f, [(0, 0.1), (0.3, 1.4), (0.5, 0.1), (0.65, 0.15), (1.0, 0.1)])
    return p.set(hp_r=hip, kn_r=knee, hp_l=-0.05, kn_l=0.15, lean=0.1, sh_r=-0.5 + 0.8 * smoothstep(f, 0.3, 0.6),
                 sh_l=0.7, el_r=0.3, el_l=0.3)


def m_throw(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    f = _frac(c)
    sh = kf(f, [(0, 0.1), (0.35, -1.7), (0.5, -2.2), (0.62, 2.4), (0.7, 1.5), (0.85, 0.6), (1.0, 0.1)])
    el = kf(f, [(0, 0.2), (0.35, -0.4), (0.5, -1.4), (0.62, -0.3), (0.7, 0.0), (1.0, 0.2)])
    lean = kf(f, [(0, 0.0), (0.45, -0.25), (0.7, 0.45), (1.0, 0.0)])
    return p.set(sh_r=sh * a, el_r=el, lean=lean, sh_l=kf(f, [(0, 0.0), (0.45, 1.3), (0.7, -0.3), (1.0, 0.0)]),
                 el_l=0.3, hp_r=-0.2, hp_l=0.3, kn_r=0.2, kn_l=0.3)


def m_catch(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    f = _frac(c)
    reach = kf(f, [(0, 0.0), (0.35, 1.0), (0.5, 1.0), (0.75, 0.35), (1.0, 0.0)])
    pull = kf(f, [(0, 0.0), (0.45, 0.0), (0.7, 1.0), (1.0, 0.2)])
    return p.set(sh_r=0.1 + 1.35 * reach * a, el_r=0.1 + 1.6 * pull, sh_l=0.05 + 1.3 * reach * a,
                 el_l=0.15 + 1.6 * pull, lean=0.15 * reach - 0.1 * pull, kn_r=0.25, kn_l=0.25, hp_r=0.2, hp_l=-0.15)


def m_dribble(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    s = _sin(c)
    return p.set(sh_r=0.65 + 0.15 * s * a, el_r=0.75 - 0.35 * s * a, sh_l=0.4, el_l=1.6, lean=0.3,
                 hp_r=0.45, hp_l=0.1, kn_r=0.75, kn_l=0.5)


def m_golf(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 1.0)
    f = _frac(c)
    ang = kf(f, [(0, 0.0), (0.4, -2.3 * a), (0.55, -2.4 * a), (0.72, 0.3), (0.9, 2.4 * a), (1.0, 2.4 * a)])
    return p.set(sh_r=ang - 0.3, sh_l=ang + 0.3, el_r=0.0, el_l=0.0, hp_r=0.2, hp_l=-0.2, kn_r=0.2, kn_l=0.2,
                 rot=-0.06 * np.sin(ang).astype(F32))


def m_tennis(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    f = _frac(c)
    sh = kf(f, [(0, 0.5), (0.35, -1.5 * a), (0.55, 1.6), (0.75, 2.4 * a), (1.0, 0.5)])
    return p.set(sh_r=sh, el_r=0.25, sh_l=kf(f, [(0, 0.6), (0.35, 1.3), (0.75, -0.4), (1.0, 0.6)]), el_l=0.4,
                 lean=0.1, hp_r=0.25, hp_l=-0.25, kn_r=0.25, kn_l=0.25)


def m_sword(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    f = _frac(c)
    s = kf(f, [(0, 0.0), (0.3, 0.0), (0.5, 1.0 * a), (0.65, 1.0 * a), (0.9, 0.0), (1.0, 0.0)])
    return p.set(hp_r=0.45 + 0.75 * s, kn_r=0.55 + 0.45 * s, hp_l=-0.45 - 0.45 * s, kn_l=0.5 - 0.45 * s,
                 sh_r=1.15 + 0.42 * s, el_r=0.35 - 0.33 * s, sh_l=-2.1, el_l=-1.1 + 0.5 * s, lean=0.05 + 0.15 * s,
                 x=0.16 * s)


def m_sword_exercise(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 1.0)
    ang = (PI - 0.3 + 1.9 * a * _sin(c)).astype(F32)
    return p.set(sh_r=ang - 0.3, sh_l=ang + 0.3, el_r=0.15, el_l=-0.15, hp_r=0.3, hp_l=-0.3, kn_r=0.3,
                 kn_l=-0.3, x=0.04 * _sin(c, 1, 0.25))


def m_tai_chi(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 1.0)
    r = 1.2 + 0.9 * a * _sin(c)
    left = 1.2 + 0.9 * a * _sin(c, 1, 0.25)
    return p.set(sh_r=r, sh_l=-left, el_r=0.6 + 0.3 * _sin(c, 1, 0.5), el_l=-(0.6 + 0.3 * _sin(c, 1, 0.75)),
                 hp_r=0.3, hp_l=-0.3, kn_r=0.35, kn_l=-0.35, x=0.06 * _sin(c, 1, 0.1), rot=0.05 * _sin(c))


def m_dance(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 1.0)
    s = _sin(c)
    return p.set(rot=0.14 * a * s, x=0.05 * s, sh_r=0.4 + 2.2 * a * _pos(s), sh_l=-(0.4 + 2.2 * a * _pos(-s)),
                 el_r=0.5, el_l=-0.5, hp_r=0.12 + 0.1 * s, hp_l=-0.12 + 0.1 * s,
                 kn_r=0.3 * np.abs(_sin(c, 2)), kn_l=-0.3 * np.abs(_sin(c, 2, 0.25)),
                 lift=0.03 * np.abs(_sin(c, 2)))


def m_shoot_bow(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    f = _frac(c)
    draw = kf(f, [(0, 0.0), (0.45, 1.0), (0.75, 1.0), (0.8, 0.0), (1.0, 0.0)]) * a
    return p.set(sh_l=1.57, el_l=0.0, sh_r=1.5 - 3.05 * draw, el_r=0.1 + 2.8 * draw, lean=-0.05, hp_r=0.25,
                 hp_l=-0.25, kn_r=0.05, kn_l=0.05)


def m_handstand(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 1.0)
    split = 0.12 + 0.3 * a * (1 - np.cos(2 * PI * c)).astype(F32) / 2
    return p.set(rot=PI + 0.07 * _sin(c), sh_r=PI - 0.22, sh_l=-(PI - 0.22), el_r=0.0, el_l=0.0,
                 hp_r=split, hp_l=-split, kn_r=0.05, kn_l=-0.05)


def m_cartwheel(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 1.0)
    f = _frac(c)
    return p.set(rot=-2 * PI * f, sh_r=2.65, sh_l=-2.65, el_r=0.0, el_l=0.0, hp_r=0.6 * a, hp_l=-0.6 * a,
                 kn_r=0.0, kn_l=0.0)


def _sit_progress(u: np.ndarray, a: float) -> np.ndarray:
    return smoothstep(u, 0.15, 0.8)


def m_sit(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    s = _sit_progress(u, a)
    bend = 4 * s * (1 - s)
    return p.set(hp_r=1.5 * s, hp_l=1.45 * s, kn_r=1.5 * s, kn_l=1.45 * s, lean=0.1 + 0.5 * bend - 0.05 * s,
                 sh_r=0.1 + 0.9 * bend + 0.35 * s, sh_l=0.05 + 0.9 * bend + 0.35 * s, el_r=0.2 + 0.6 * s,
                 el_l=0.2 + 0.6 * s, x=-0.12 * s)


def m_stand(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    return m_sit(c, 1.0 - u, a)


def m_fall_floor(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    s = smoothstep(u, 0.15, 0.7)
    wob = 0.12 * np.sin(2 * PI * 2.5 * u).astype(F32) * (1 - s) * smoothstep(u, 0.0, 0.15)
    return p.set(rot=-1.5 * s + wob, sh_r=0.2 + 1.5 * smoothstep(u, 0.2, 0.5), sh_l=0.1 + 1.4 * smoothstep(u, 0.2, 0.5),
                 el_r=0.2, el_l=0.25, kn_r=0.6 * 4 * s * (1 - s) + 0.1, kn_l=0.3 * s, hp_r=0.5 * 4 * s * (1 - s),
                 x=0.15 * s, head=-0.3 * s)


def m_ride_bike(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    s, q = _sin(c), np.cos(2 * PI * c).astype(F32)
    return p.set(lean=0.45, sh_r=1.05, sh_l=1.0, el_r=0.35, el_l=0.35, hp_r=1.05 + 0.38 * s, hp_l=1.05 - 0.38 * s,
                 kn_r=1.35 + 0.5 * q, kn_l=1.35 - 0.5 * q, lift=np.full(len(c), 0.58, F32))


def m_juggle(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 1.0)
    s = _sin(c)
    return p.set(sh_r=0.35 + 0.12 * s, el_r=1.6 + 0.35 * s, sh_l=-(0.35 - 0.12 * s), el_l=-(1.6 - 0.35 * s),
                 head=-0.15)


def m_jump_rope(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 1.0)
    s = _sin(c)
    return p.set(sh_r=0.45 + 0.08 * s, sh_l=-(0.45 + 0.08 * s), el_r=0.7 + 0.2 * _sin(c, 1, 0.25),
                 el_l=-(0.7 + 0.2 * _sin(c, 1, 0.25)), lift=0.07 * a * np.abs(np.cos(PI * c)).astype(F32),
                 kn_r=0.15, kn_l=-0.15)


def m_swim(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 0.0)
    ang = (2 * PI * c).astype(F32)
    return p.set(rot=np.full(len(c), -PI / 2 + 0.05, F32), sh_r=ang, sh_l=ang + PI, el_r=0.25, el_l=0.25,
                 hp_r=0.22 * _sin(c, 2), hp_l=-0.22 * _sin(c, 2), kn_r=0.15, kn_l=0.15, head=-0.5,
                 lift=np.full(len(c), 0.12, F32))


def m_hula_hoop(c: np.ndarray, u: np.ndarray, a: float) -> Pose:
    p = Pose(len(c), 1.0)
    return p.set(x=0.035 * _sin(c), rot=0.07 * _sin(c, 1, 0.25), sh_r=2.2, sh_l=-2.2, el_r=0.7, el_l=-0.7,
                 kn_r=0.12 + 0.12 * _sin(c), kn_l=-0.12 + 0.12 * _sin(c))


# ------------------------------------------------------------------------------ action props
# A prop function gets world-space joints (after grounding), cycles c, progress u and the body
# and returns shapes: (layer, kind, params). Layers: "back" (behind the body), "front".


def _along(j: Joints, hand: str, elbow: str, length: float) -> np.ndarray:
    """The point ``length`` beyond the hand along the forearm (where a held tool ends)."""
    d = j[hand] - j[elbow]
    d = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-6)
    return j[hand] + d * length


def p_brush_hair(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    return [("front", "capsule", j["hand_r"], _along(j, "hand_r", "elbow_r", 0.09), 0.022, "black")]


def p_brush_teeth(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    tip = j["hand_r"] + np.array([0.07, 0.02], F32)
    return [("front", "capsule", j["hand_r"], tip, 0.013, "teal")]


def p_punch_bag(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    n = len(c)
    hit = np.maximum(_pos(_sin(c)) ** 2, _pos(-_sin(c)) ** 2)
    sway = 0.03 * np.sin(2 * PI * c * 2 + 0.5).astype(F32) * hit
    top = np.stack([np.full(n, float(j["pelvis"][0, 0]) + 0.5, F32), np.full(n, 1.25, F32)], -1)
    bag_top = top - np.array([0, 0.32], F32)
    bag_bot = bag_top + np.stack([sway, np.full(n, -0.42, F32)], -1)
    return [("back", "capsule", top, bag_top, 0.008, "grey"),
            ("front", "capsule", bag_top, bag_bot, 0.1, "red")]


def _ball_after(start: np.ndarray, vel: np.ndarray, t: np.ndarray, g: float = 2.5) -> np.ndarray:
    """A ballistic path: position after time ``t`` from ``start`` with velocity ``vel``."""
    return start + vel * t[:, None] + np.stack([np.zeros_like(t), -0.5 * g * t * t], -1)


def p_kick_ball(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    f = _frac(c)
    rest = np.stack([j["pelvis"][:, 0] * 0 + j["pelvis"][0, 0] + 0.2, np.full(len(c), 0.055, F32)], -1)
    dt = np.maximum(f - 0.5, 0).astype(F32) * 1.6
    flying = _ball_after(rest, np.array([1.6, 0.9], F32), dt)
    pos = np.where((f > 0.5)[:, None], flying, rest)
    return [("front", "circle", pos, 0.055, "white"), ("front", "circle", pos, 0.022, "black")]


def p_dribble(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    s = _sin(c)
    hand = j["hand_r"]
    h = (hand[:, 1] - 0.06) * (0.5 + 0.5 * s)  # the ball rises to the hand as the hand goes up
    pos = np.stack([hand[:, 0] + 0.02, 0.06 + np.maximum(h, 0)], -1)
    return [("front", "circle", pos, 0.06, "orange")]


def p_throw(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    f = _frac(c)
    dt = np.maximum(f - 0.66, 0).astype(F32) * 1.5
    release = j["hand_r"][np.argmin(np.abs(f - 0.66))] if len(f) else j["hand_r"][0]
    flying = _ball_after(release[None, :], np.array([1.8, 0.5], F32), dt)
    pos = np.where((f > 0.66)[:, None], flying, j["hand_r"])
    return [("front", "circle", pos, 0.04, "white")]


def p_catch(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    f = _frac(c)
    hands = (j["hand_r"] + j["hand_l"]) / 2
    contact = np.clip(f / 0.45, 0, 1)
    start = hands + np.array([1.0, 0.25], F32)
    incoming = start + (hands - start) * contact[:, None] + np.stack(
        [np.zeros_like(f), 0.25 * np.sin(PI * contact)], -1)
    pos = np.where((f < 0.45)[:, None], incoming, hands)
    return [("front", "circle", pos, 0.05, "yellow")]


def p_juggle(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    shapes = []
    mid = (j["hand_r"] + j["hand_l"]) / 2
    for i, col in enumerate(("red", "yellow", "blue")):
        q = _frac(c * 1.5 + i / 3.0)
        x = mid[:, 0] + 0.13 * np.cos(2 * PI * q)
        y = mid[:, 1] + 0.05 + 0.32 * np.abs(np.sin(PI * q))
        shapes.append(("front", "circle", np.stack([x, y], -1).astype(F32), 0.035, col))
    return shapes


def p_golf(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    hands = (j["hand_r"] + j["hand_l"]) / 2
    head = _along({"h": hands, "e": (j["elbow_r"] + j["elbow_l"]) / 2}, "h", "e", 0.42)
    ball = np.tile(np.array([[j["pelvis"][0, 0] + 0.02, 0.025]], F32), (len(c), 1))
    return [("front", "capsule", hands, head, 0.012, "grey"), ("front", "circle", head, 0.025, "black"),
            ("back", "circle", ball, 0.025, "white")]


def p_tennis(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    base = _along(j, "hand_r", "elbow_r", 0.12)
    head = _along(j, "hand_r", "elbow_r", 0.26)
    return [("front", "capsule", j["hand_r"], base, 0.014, "black"),
            ("front", "ring", head, 0.075, 0.06, np.zeros(len(c), F32), 0.016, "red")]


def p_sword(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    tip = _along(j, "hand_r", "elbow_r", 0.5)
    guard = _along(j, "hand_r", "elbow_r", 0.03)
    return [("front", "capsule", guard, tip, 0.013, "grey"), ("front", "circle", guard, 0.025, "yellow")]


def p_sword_exercise(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    hands = (j["hand_r"] + j["hand_l"]) / 2
    elbows = (j["elbow_r"] + j["elbow_l"]) / 2
    tip = _along({"h": hands, "e": elbows}, "h", "e", 0.55)
    return [("front", "capsule", hands, tip, 0.013, "grey"), ("front", "circle", hands, 0.025, "yellow")]


def p_shoot_bow(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    hand = j["hand_l"]
    top, bot = hand + np.array([-0.05, 0.26], F32), hand + np.array([-0.05, -0.26], F32)
    f = _frac(c)
    n = len(c)
    shapes = [("front", "ring", hand + np.array([-0.1, 0.0], F32), 0.1, 0.26, np.zeros(n, F32), 0.016, "brown")]
    # The string runs from both tips to the drawing hand; after release the arrow flies on.
    shapes += [("front", "capsule", top, j["hand_r"], 0.006, "white"),
               ("front", "capsule", bot, j["hand_r"], 0.006, "white")]
    flying = f > 0.78
    start = np.where(flying[:, None], hand + np.array([(1, 0)], F32) * ((f - 0.78) * 4.0)[:, None], j["hand_r"])
    shapes.append(("front", "capsule", start, start + np.array([0.34, 0.0], F32), 0.008, "black"))
    return shapes


def p_pull_up(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    n = len(c)
    y = float(np.mean((j["hand_r"][:, 1] + j["hand_l"][:, 1]) / 2))
    x0 = float(j["pelvis"][0, 0])
    left = np.tile(np.array([[x0 - 0.45, y]], F32), (n, 1))
    right = np.tile(np.array([[x0 + 0.45, y]], F32), (n, 1))
    return [("back", "capsule", left, right, 0.018, "grey"),
            ("back", "capsule", left, left * np.array([1, 0], F32), 0.02, "grey"),
            ("back", "capsule", right, right * np.array([1, 0], F32), 0.02, "grey")]


def p_climb(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    n = len(c)
    x0 = float(j["pelvis"][0, 0])
    shapes = [("back", "rect", np.array([x0 - 0.45, 0.0, x0 + 0.45, 2.2], F32), "wood")]
    rng = np.random.default_rng(7)  # fixed hold layout: part of the prop, not of the seed
    for hx, hy in rng.uniform([-0.38, 0.08], [0.38, 2.1], (14, 2)):
        col = ("red", "yellow", "blue", "green")[int(abs(hx * 100)) % 4]
        shapes.append(("back", "circle", np.tile(np.array([[x0 + hx, hy]], F32), (n, 1)), 0.03, col))
    return shapes


STAIR_RUN, STAIR_RISE = 0.16, 0.075


def p_climb_stairs(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    n = len(c)
    shapes = []
    x0 = float(j["pelvis"][0, 0]) - 0.2
    for k in range(9):
        box = np.array([x0 + k * STAIR_RUN - 0.1, 0.0, x0 + 2.5, (k + 1) * STAIR_RISE - 0.06], F32)
        shapes.append(("back", "rect", box, "concrete" if k % 2 else "grey"))
    del n
    return shapes


def p_drink(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    top = j["hand_r"] + np.array([0.015, 0.045], F32)
    return [("front", "capsule", j["hand_r"] - np.array([-0.015, 0.02], F32), top, 0.03, "white")]


def p_eat(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    bowl = j["hand_l"] + np.array([0.02, 0.02], F32)
    return [("front", "ellipse", bowl, 0.08, 0.035, "orange"),
            ("front", "capsule", j["hand_r"], j["hand_r"] + np.array([0.05, 0.03], F32), 0.012, "grey"),
            ("front", "circle", j["hand_r"] + np.array([0.05, 0.035], F32), 0.018, "yellow")]


def p_chair(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    n = len(c)
    seat_y = b.shin + 0.02
    x0 = float(np.min(j["pelvis"][:, 0]))
    seat_l, seat_r = x0 - 0.1, x0 + 0.14
    shapes = [("back", "rect", np.array([seat_l, seat_y - 0.035, seat_r, seat_y], F32), "brown"),
              ("back", "rect", np.array([seat_l - 0.02, seat_y, seat_l + 0.02, seat_y + 0.32], F32), "brown"),
              ("back", "rect", np.array([seat_l, 0.0, seat_l + 0.025, seat_y], F32), "brown"),
              ("back", "rect", np.array([seat_r - 0.025, 0.0, seat_r, seat_y], F32), "brown")]
    del n
    return shapes


def p_ride_bike(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    n = len(c)
    pel = j["pelvis"]
    crank = pel + np.array([0.12, -0.4], F32)
    rear = pel + np.array([-0.22, -0.4], F32)
    front = pel + np.array([0.48, -0.4], F32)
    wheel_y = 0.17
    rear[:, 1] = wheel_y
    front[:, 1] = wheel_y
    crank[:, 1] = wheel_y + 0.02
    bar = pel + np.array([0.42, 0.1], F32)
    ang = (2 * PI * c * 1.0).astype(F32)
    shapes = [("back", "ring", rear, 0.17, 0.17, np.zeros(n, F32), 0.018, "black"),
              ("back", "ring", front, 0.17, 0.17, np.zeros(n, F32), 0.018, "black"),
              ("back", "capsule", rear, crank, 0.014, "red"), ("back", "capsule", crank, pel, 0.014, "red"),
              ("back", "capsule", pel, bar, 0.014, "red"), ("back", "capsule", bar, front, 0.014, "red"),
              ("back", "capsule", rear, pel, 0.012, "red")]
    for wheel in (rear, front):  # spokes turn with the wheels
        d = np.stack([np.cos(ang), np.sin(ang)], -1) * 0.16
        shapes.append(("back", "capsule", wheel - d, wheel + d, 0.006, "grey"))
    return shapes


def p_jump_rope(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    n = len(c)
    hr, hl = j["hand_r"], j["hand_l"]
    theta = (2 * PI * c).astype(F32)
    height = j["head"][:, 1] + b.head_r + 0.06
    depth_top = height - (hr[:, 1] + hl[:, 1]) / 2
    depth_bot = (hr[:, 1] + hl[:, 1]) / 2 - 0.01
    bulge = np.where(np.cos(theta) > 0, depth_top * np.cos(theta), depth_bot * np.cos(theta)).astype(F32)
    shapes = []
    pts = []
    for s in np.linspace(0, 1, 9):
        base = hl + (hr - hl) * s
        lift = bulge * np.sin(PI * s) ** 0.6
        pts.append(base + np.stack([np.zeros(n, F32), lift], -1))
    for a_, b_ in zip(pts[:-1], pts[1:]):
        shapes.append(("front", "capsule", a_, b_, 0.008, "black"))
    return shapes


def p_swim(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    x0 = float(np.mean(j["pelvis"][:, 0]))
    return [("front", "rect", np.array([x0 - 3.0, -0.2, x0 + 3.0, 0.13], F32), "water", 0.6)]


def p_hula_hoop(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    n = len(c)
    centre = j["pelvis"] + np.stack([0.05 * np.cos(2 * PI * c), np.full(n, 0.1, F32)], -1).astype(F32)
    tilt = (0.15 * np.sin(2 * PI * c)).astype(F32)
    return [("front", "ring", centre, 0.23, 0.05, tilt, 0.015, "pink")]


def p_sit_up(j: Joints, c: np.ndarray, u: np.ndarray, b: Body) -> list[tuple]:
    x0 = float(np.mean(j["pelvis"][:, 0]))
    return [("back", "rect", np.array([x0 - 0.6, 0.0, x0 + 0.5, 0.02], F32), "blue")]


MOTIONS: dict[str, MotionSpec] = {
    "idle": MotionSpec(m_idle, 1.0),
    "walk": MotionSpec(m_walk, 2.0, travel=0.7),
    "run": MotionSpec(m_run, 3.0, travel=1.6),
    "jump": MotionSpec(m_jump, 1.4),
    "jumping jack": MotionSpec(m_jumping_jack, 3.0, facing=1.0),
    "squat": MotionSpec(m_squat, 1.5),
    "lunge": MotionSpec(m_lunge, 1.5),
    "push up": MotionSpec(m_push_up, 2.0, ground="all"),
    "sit up": MotionSpec(m_sit_up, 1.5, ground="all", props=p_sit_up),
    "pull up": MotionSpec(m_pull_up, 1.7, facing=1.0, ground="hang", props=p_pull_up),
    "climb": MotionSpec(m_climb, 2.0, facing=1.0, props=p_climb),
    "climb stairs": MotionSpec(m_climb_stairs, 2.0, travel=0.5, props=p_climb_stairs),
    "drink": MotionSpec(m_drink, 1.2, props=p_drink),
    "eat": MotionSpec(m_eat, 3.0, props=p_eat),
    "brush hair": MotionSpec(m_brush_hair, 3.0, facing=0.3, props=p_brush_hair),
    "brush teeth": MotionSpec(m_brush_teeth, 6.0, props=p_brush_teeth),
    "wave": MotionSpec(m_wave, 3.0, facing=1.0),
    "clap": MotionSpec(m_clap, 4.0, facing=1.0),
    "punch": MotionSpec(m_punch, 3.0),
    "punch bag": MotionSpec(m_punch, 3.0, props=p_punch_bag),
    "kick": MotionSpec(m_kick, 1.5),
    "kick ball": MotionSpec(m_kick_ball, 1.0, props=p_kick_ball),
    "throw": MotionSpec(m_throw, 1.2, props=p_throw),
    "catch": MotionSpec(m_catch, 1.2, props=p_catch),
    "dribble": MotionSpec(m_dribble, 3.0, props=p_dribble),
    "golf": MotionSpec(m_golf, 1.0, facing=1.0, props=p_golf),
    "tennis swing": MotionSpec(m_tennis, 1.5, props=p_tennis),
    "sword": MotionSpec(m_sword, 1.5, props=p_sword),
    "sword exercise": MotionSpec(m_sword_exercise, 1.0, facing=1.0, props=p_sword_exercise),
    "tai chi": MotionSpec(m_tai_chi, 0.8, facing=1.0),
    "dance": MotionSpec(m_dance, 2.0, facing=1.0),
    "shoot bow": MotionSpec(m_shoot_bow, 1.0, props=p_shoot_bow),
    "handstand": MotionSpec(m_handstand, 1.0, facing=1.0, ground="all"),
    "cartwheel": MotionSpec(m_cartwheel, 1.0, facing=1.0, ground="all", travel=0.9),
    "sit": MotionSpec(m_sit, 1.0, props=p_chair),
    "stand": MotionSpec(m_stand, 1.0, props=p_chair),
    "fall floor": MotionSpec(m_fall_floor, 1.0, ground="all"),
    "ride bike": MotionSpec(m_ride_bike, 2.0, ground="none", travel=1.2, props=p_ride_bike),
    "juggle": MotionSpec(m_juggle, 3.0, facing=1.0, props=p_juggle),
    "jump rope": MotionSpec(m_jump_rope, 4.0, facing=1.0, props=p_jump_rope),
    "swim": MotionSpec(m_swim, 2.0, ground="none", travel=0.8, props=p_swim),
    "hula hoop": MotionSpec(m_hula_hoop, 4.0, facing=1.0, props=p_hula_hoop),
}


# --------------------------------------------------------------------------------------------
# Rasterisation
# --------------------------------------------------------------------------------------------


class Canvas:
    """T frames of H×W float RGB, each with its own camera (centre, pixel size, mirror)."""

    def __init__(self, n: int, h: int, w: int, cx: np.ndarray, cy: np.ndarray, px: np.ndarray,
                 mirror: bool) -> None:
        self.n, self.h, self.w = n, h, w
        self.cx, self.cy, self.px = cx.astype(F32), cy.astype(F32), px.astype(F32)
        self.sx = F32(-1.0 if mirror else 1.0)
        self.img = np.zeros((n, h, w, 3), F32)
        self.cols = (np.arange(w, dtype=F32) + 0.5 - w / 2)
        self.rows = (np.arange(h, dtype=F32) + 0.5 - h / 2)

    def grid(self, x0: np.ndarray | float, x1: np.ndarray | float, y0: np.ndarray | float,
             y1: np.ndarray | float, margin: float = 0.0):
        """Pixel window covering a world box in every frame, and its world coordinates.

        Returns (rows slice, cols slice, gx (T,1,w'), gy (T,h',1), px (T,1,1)) or None if the
        box is outside every frame."""
        x0, x1 = np.minimum(x0, x1) - margin, np.maximum(x0, x1) + margin
        y0, y1 = np.minimum(y0, y1) - margin, np.maximum(y0, y1) + margin
        ca = (np.asarray(x0, F32) - self.cx) / self.px * self.sx + self.w / 2
        cb = (np.asarray(x1, F32) - self.cx) / self.px * self.sx + self.w / 2
        ra = self.h / 2 - (np.asarray(y1, F32) - self.cy) / self.px
        rb = self.h / 2 - (np.asarray(y0, F32) - self.cy) / self.px
        j0 = int(max(0, np.floor(np.min(np.minimum(ca, cb))) - 1))
        j1 = int(min(self.w, np.ceil(np.max(np.maximum(ca, cb))) + 1))
        i0 = int(max(0, np.floor(np.min(ra)) - 1))
        i1 = int(min(self.h, np.ceil(np.max(rb)) + 1))
        if j0 >= j1 or i0 >= i1:
            return None
        px = self.px[:, None, None]
        gx = self.cx[:, None, None] + self.cols[None, None, j0:j1] * px * self.sx
        gy = self.cy[:, None, None] - self.rows[None, i0:i1, None] * px
        return slice(i0, i1), slice(j0, j1), gx, gy, px

    def paint(self, rs: slice, cs: slice, alpha: np.ndarray, color: np.ndarray) -> None:
        region = self.img[:, rs, cs]
        color = np.asarray(color, F32)
        if color.ndim == 2:  # per-frame colour
            color = color[:, None, None, :]
        region += (color - region) * alpha[..., None]

    @staticmethod
    def _pts(p: np.ndarray, n: int) -> np.ndarray:
        p = np.asarray(p, F32)
        return np.broadcast_to(p, (n, 2)) if p.ndim == 1 else p

    def capsule(self, a: np.ndarray, b: np.ndarray, r: float, color: np.ndarray, alpha: float = 1.0) -> None:
        a, b = self._pts(a, self.n), self._pts(b, self.n)
        g = self.grid(np.minimum(a[:, 0], b[:, 0]), np.maximum(a[:, 0], b[:, 0]),
                      np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1]), r + 0.03)
        if g is None:
            return
        rs, cs, gx, gy, px = g
        ax, ay = a[:, 0, None, None], a[:, 1, None, None]
        dx, dy = (b[:, 0] - a[:, 0])[:, None, None], (b[:, 1] - a[:, 1])[:, None, None]
        l2 = dx * dx + dy * dy + F32(1e-9)
        qx, qy = gx - ax, gy - ay
        t = np.clip((qx * dx + qy * dy) / l2, 0, 1)
        ex, ey = qx - t * dx, qy - t * dy
        d = np.sqrt(ex * ex + ey * ey)
        self.paint(rs, cs, np.clip((r - d) / px + 0.5, 0, 1) * F32(alpha), color)

    def circle(self, c: np.ndarray, r: float, color: np.ndarray, alpha: float = 1.0) -> None:
        self.capsule(c, c, r, color, alpha)

    def ellipse(self, c: np.ndarray, rx: float, ry: float, color: np.ndarray, ring: float = 0.0,
                angle: np.ndarray | None = None, alpha: float = 1.0) -> None:
        """A filled ellipse, or with ``ring`` > 0 its outline of that half-width."""
        c = self._pts(c, self.n)
        m = max(rx, ry) + ring + 0.03
        g = self.grid(c[:, 0] - m, c[:, 0] + m, c[:, 1] - m, c[:, 1] + m)
        if g is None:
            return
        rs, cs, gx, gy, px = g
        qx, qy = gx - c[:, 0, None, None], gy - c[:, 1, None, None]
        if angle is not None:
            ca, sa = np.cos(angle)[:, None, None].astype(F32), np.sin(angle)[:, None, None].astype(F32)
            qx, qy = qx * ca + qy * sa, -qx * sa + qy * ca
        k = np.sqrt((qx / rx) ** 2 + (qy / ry) ** 2) + F32(1e-6)
        grad = np.sqrt((qx / rx ** 2) ** 2 + (qy / ry ** 2) ** 2) / k + F32(1e-6)
        d = (k - 1) / grad  # first-order distance to the ellipse
        cov = np.clip((ring - np.abs(d)) / px + 0.5, 0, 1) if ring > 0 else np.clip(-d / px + 0.5, 0, 1)
        self.paint(rs, cs, cov * F32(alpha), color)

    def rect(self, box: Sequence[float], color: np.ndarray, alpha: float = 1.0) -> None:
        x0, y0, x1, y1 = (float(v) for v in box)
        g = self.grid(x0, x1, y0, y1)
        if g is None:
            return
        rs, cs, gx, gy, px = g
        dx = np.maximum(x0 - gx, gx - x1)
        dy = np.maximum(y0 - gy, gy - y1)
        cov = np.clip(-np.maximum(dx, dy) / px + 0.5, 0, 1)
        self.paint(rs, cs, cov * F32(alpha), color)

    def polygon(self, pts: np.ndarray, color: np.ndarray, alpha: float = 1.0) -> None:
        """A convex polygon (T, K, 2), counter-clockwise."""
        pts = np.asarray(pts, F32)
        g = self.grid(pts[..., 0].min(-1), pts[..., 0].max(-1), pts[..., 1].min(-1), pts[..., 1].max(-1), 0.02)
        if g is None:
            return
        rs, cs, gx, gy, px = g
        d = None
        k = pts.shape[1]
        for i in range(k):
            a, b = pts[:, i], pts[:, (i + 1) % k]
            ex, ey = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
            ln = np.sqrt(ex * ex + ey * ey) + F32(1e-9)
            # outward normal of a counter-clockwise edge is (ey, -ex)
            di = ((gx - a[:, 0, None, None]) * (ey / ln)[:, None, None]
                  - (gy - a[:, 1, None, None]) * (ex / ln)[:, None, None])
            d = di if d is None else np.maximum(d, di)
        self.paint(rs, cs, np.clip(-d / px + 0.5, 0, 1) * F32(alpha), color)

    def draw(self, shape: tuple, colors: Callable[[str], np.ndarray]) -> None:
        kind = shape[1]
        if kind == "capsule":
            _, _, a, b, r, col = shape[:6]
            self.capsule(a, b, r, colors(col), *(shape[6:]))
        elif kind == "circle":
            _, _, c, r, col = shape
            self.circle(c, r, colors(col))
        elif kind == "ring":
            _, _, c, rx, ry, ang, width, col = shape
            self.ellipse(c, rx, ry, colors(col), ring=width, angle=ang)
        elif kind == "ellipse":
            _, _, c, rx, ry, col = shape
            self.ellipse(c, rx, ry, colors(col))
        elif kind == "rect":
            _, _, box, col, *rest = shape
            self.rect(box, colors(col), *rest)
        else:
            raise ValueError(kind)


# --------------------------------------------------------------------------------------------
# Scenes: background and props
# --------------------------------------------------------------------------------------------


def _draw_background(cv: Canvas, env_name: str, rng: np.random.Generator, t: np.ndarray) -> None:
    env = ENVIRONMENT_BY_NAME[env_name]
    g = cv.grid(-1e3, 1e3, -1e3, 1e3)
    assert g is not None
    _, _, gx, gy, px = g
    gx = np.broadcast_to(gx, (cv.n, cv.h, cv.w))
    gy = np.broadcast_to(gy, (cv.n, cv.h, cv.w))
    top, bottom, floor = rgb(env.wall_top), rgb(env.wall_bottom), rgb(env.floor)
    hz = F32(env.horizon)
    w = np.clip((gy - hz) / 0.9, 0, 1)[..., None]
    wall = bottom + (top - bottom) * w
    depth = np.clip((hz - gy) / (hz + 0.4), 0, 1)[..., None]  # floor gets darker toward the back
    fl = floor * (0.85 + 0.2 * depth)
    wall_mask = np.clip((gy - hz) / px[..., None][..., 0] + 0.5, 0, 1)[..., None]
    cv.img[:] = fl + (wall - fl) * wall_mask
    # Texture patterns evaluated on world coordinates, so they move with the camera.
    if "tiles" in env.props:
        lines = (np.minimum(np.abs(((gx + 10) % 0.14) - 0.07), np.abs(((gy + 10) % 0.14) - 0.07)) > 0.062)
        cv.img *= np.where(lines & (gy > hz), F32(0.82), F32(1.0))[..., None]
    if "paper wall" in env.props:
        lines = (np.abs(((gx + 10) % 0.22) - 0.11) > 0.1) | (np.abs(((gy + 10) % 0.3) - 0.15) > 0.14)
        cv.img *= np.where(lines & (gy > hz), F32(0.55), F32(1.0))[..., None]
    if "curtain" in env.props:
        folds = 0.8 + 0.2 * np.cos(gx * 40).astype(F32)
        cv.img *= np.where(gy > hz, folds, F32(1.0))[..., None]
    if env.floor in ("light wood", "wood", "court", "tatami"):
        planks = np.abs(((gy + 10) % 0.06) - 0.03) > 0.026
        cv.img *= np.where(planks & (gy < hz), F32(0.9), F32(1.0))[..., None]
    if "lanes" in env.props:
        lane = np.abs(((gy + 10) % 0.12) - 0.06) < 0.008
        cv.img[...] = np.where((lane & (gy < hz))[..., None], rgb("white") * 0.9, cv.img)
    shift = rng.uniform(-0.25, 0.25)
    xmin, xmax = float(np.min(cv.cx) - 2.0), float(np.max(cv.cx) + 2.0)

    def tiled(period: float, offset: float) -> list[float]:
        start = np.floor((xmin - offset) / period) * period + offset
        return [float(x) for x in np.arange(start, xmax, period)]

    n = cv.n
    for prop in env.props:
        if prop == "window":
            for x in tiled(1.4, 0.5 + shift):
                cv.rect((x - 0.22, hz + 0.15, x + 0.22, hz + 0.6), rgb("grey"))
                cv.rect((x - 0.19, hz + 0.18, x + 0.19, hz + 0.57), rgb("sky"))
        elif prop == "rack":
            for x in tiled(1.8, -0.8 + shift):
                cv.rect((x - 0.3, hz + 0.05, x + 0.3, hz + 0.09), rgb("black"))
                for k in range(4):
                    cv.circle(np.array([x - 0.22 + 0.15 * k, hz + 0.1], F32), 0.035, rgb("grey"))
        elif prop == "sea":
            cv.rect((xmin, hz - 0.12, xmax, hz + 0.004), rgb("water"))
        elif prop == "sun":
            cv.circle(np.array([float(np.mean(cv.cx)) + 0.45 + shift, hz + 0.55], F32), 0.1, rgb("yellow"))
        elif prop == "trees":
            for x in tiled(0.9, 0.45 + shift):
                cv.capsule(np.array([x, hz - 0.05], F32), np.array([x, hz + 0.35], F32), 0.03, rgb("brown"))
                cv.circle(np.array([x, hz + 0.45], F32), 0.17, rgb("dark grass") * 1.1)
        elif prop == "cabinets":
            for x in tiled(0.5, shift):
                cv.rect((x - 0.2, hz + 0.45, x + 0.2, hz + 0.8), rgb("wood"))
        elif prop == "counter":
            cv.rect((xmin, 0.0, xmax, hz + 0.0), rgb("light wood") * 0.8)
            cv.rect((xmin, hz - 0.03, xmax, hz + 0.01), rgb("grey"))
        elif prop == "mirror":
            x = float(np.mean(cv.cx)) - 0.35 + shift
            cv.rect((x - 0.2, hz + 0.12, x + 0.2, hz + 0.62), rgb("grey"))
            cv.rect((x - 0.17, hz + 0.15, x + 0.17, hz + 0.59), rgb("pale sky"))
        elif prop == "desk":
            x = float(np.mean(cv.cx)) + 0.55 + shift
            cv.rect((x - 0.3, 0.3, x + 0.3, 0.36), rgb("wood"))
            cv.rect((x - 0.28, 0.0, x - 0.24, 0.3), rgb("wood"))
            cv.rect((x + 0.24, 0.0, x + 0.28, 0.3), rgb("wood"))
        elif prop == "buildings":
            for i, x in enumerate(tiled(0.45, shift)):
                hgt = 0.35 + 0.45 * ((i * 37 + int(x * 10)) % 7) / 7.0
                col = ("concrete", "brown", "grey", "cream")[(i + int(abs(x) * 3)) % 4]
                cv.rect((x - 0.2, hz, x + 0.2, hz + hgt), rgb(col))
        elif prop == "lamp":
            for x in tiled(1.6, 0.7 + shift):
                cv.capsule(np.array([x, 0.0], F32), np.array([x, hz + 0.6], F32), 0.015, rgb("black"))
                cv.circle(np.array([x, hz + 0.62], F32), 0.04, rgb("yellow"))
        elif prop == "bench":
            x = float(np.mean(cv.cx)) - 0.6 + shift
            cv.rect((x - 0.25, 0.18, x + 0.25, 0.22), rgb("wood"))
            cv.rect((x - 0.25, 0.26, x + 0.25, 0.3), rgb("wood"))
        elif prop == "snowflakes":
            pts = rng.uniform([xmin, 0.0], [xmax, 1.6], (24, 2)).astype(F32)
            for p0 in pts:
                fall = np.stack([0.03 * np.sin(t * 6 + p0[0]), -0.25 * t], -1).astype(F32)
                cv.circle(p0 + fall, 0.014, rgb("white"))
        elif prop == "spotlight":
            cv.ellipse(np.array([float(np.mean(cv.cx)), 0.02], F32), 0.45, 0.08, rgb("cream"), alpha=0.55)
        elif prop == "bed":
            x = float(np.mean(cv.cx)) - 0.65 + shift
            cv.rect((x - 0.45, 0.0, x + 0.35, 0.28), rgb("white"))
            cv.rect((x - 0.45, 0.22, x + 0.35, 0.28), rgb("blue"))
            cv.rect((x - 0.5, 0.0, x - 0.45, 0.45), rgb("wood"))
        elif prop == "hoop":
            x = float(np.mean(cv.cx)) + 0.7 + shift
            cv.rect((x - 0.02, 0.0, x + 0.02, 1.0), rgb("grey"))
            cv.rect((x - 0.2, 0.9, x + 0.02, 1.15), rgb("white"))
            cv.ellipse(np.array([x - 0.24, 0.92], F32), 0.08, 0.02, rgb("orange"), ring=0.012)
        elif prop == "dunes":
            for x in tiled(1.1, shift):
                cv.ellipse(np.array([x, hz], F32), 0.55, 0.16, rgb("dune") * 0.92)
        elif prop == "cactus":
            for x in tiled(1.7, 0.6 + shift):
                cv.capsule(np.array([x, 0.02], F32), np.array([x, 0.55], F32), 0.04, rgb("green"))
                cv.capsule(np.array([x, 0.3], F32), np.array([x + 0.12, 0.3], F32), 0.03, rgb("green"))
                cv.capsule(np.array([x + 0.12, 0.3], F32), np.array([x + 0.12, 0.45], F32), 0.03, rgb("green"))
        elif prop == "flag":
            x = float(np.mean(cv.cx)) + 0.65 + shift
            cv.capsule(np.array([x, 0.0], F32), np.array([x, 0.7], F32), 0.01, rgb("white"))
            tri = np.array([[x, 0.7], [x, 0.56], [x + 0.2, 0.63]], F32)[None].repeat(n, 0)
            cv.polygon(tri[:, ::-1], rgb("red"))
        elif prop in ("curtain", "paper wall", "lanes", "tiles"):
            pass  # textures, drawn above
        else:
            raise ValueError(f"unknown prop {prop!r}")


def _apply_lighting(cv: Canvas, lighting: str, figure_x: np.ndarray) -> None:
    bright, tint, side = LIGHTING[lighting]
    g = cv.grid(-1e3, 1e3, -1e3, 1e3)
    assert g is not None
    _, _, gx, gy, _ = g
    gain = F32(bright) * (1 + F32(side) * np.clip((gx - cv.cx[:, None, None]) / 0.7, -1, 1))
    if lighting == "spotlight":
        d2 = (gx - figure_x[:, None, None]) ** 2 * 2.2 + (gy - 0.5) ** 2 * 0.6
        gain = gain * (0.35 + 0.95 * np.exp(-d2 / 0.12))
    cv.img *= (gain[..., None] * np.asarray(tint, F32))


# --------------------------------------------------------------------------------------------
# The figure
# --------------------------------------------------------------------------------------------


def _shade(col: np.ndarray, k: float) -> np.ndarray:
    return np.clip(col * k, 0, 1)


def _draw_figure(cv: Canvas, j: dict[str, np.ndarray], ch: Character, b: Body, facing: float,
                 colors: dict[str, np.ndarray]) -> None:
    """Draw the figure, back to front: far limbs (shaded), hair, torso, near leg, head, near arm."""
    skin, top, bottom = colors["skin"], colors["top"], colors["bottom"]
    hair, acc, shoe = colors["hair"], colors["accessory"], np.array([0.12, 0.1, 0.1], F32)
    far = 0.72 if facing < 0.5 else 0.9  # the far-side limbs are in shadow
    lr = b.limb_r
    up, side = j["up"], j["side"]
    back = -side if facing < 0.5 else None

    def leg(s: str, k: float) -> None:
        thigh_col = skin if ch.bottom_kind == "dress" else bottom
        shin_col = bottom if ch.bottom_kind == "pants" else skin
        cv.capsule(j[f"hip_{s}"], j[f"knee_{s}"], lr * 1.15, _shade(thigh_col, k))
        cv.capsule(j[f"knee_{s}"], j[f"foot_{s}"], lr, _shade(shin_col, k))
        cv.circle(j[f"foot_{s}"], lr * 1.05, _shade(shoe, k))

    def arm(s: str, k: float) -> None:
        cv.capsule(j[f"shoulder_{s}"], j[f"elbow_{s}"], lr, _shade(top, k))
        cv.capsule(j[f"elbow_{s}"], j[f"hand_{s}"], lr * 0.85, _shade(skin, k))
        cv.circle(j[f"hand_{s}"], lr * 1.05, _shade(skin, k))

    if ch.accessory == "backpack" and back is not None:
        mid = j["pelvis"] + up * (b.torso * 0.6) + back * (b.torso_r + 0.03)
        cv.capsule(mid - up * 0.08, mid + up * 0.07, 0.055, acc)
    if ch.hair_style == "long":
        hb = j["head"] + (back if back is not None else 0 * side) * (b.head_r * 0.55)
        cv.capsule(hb + up * (b.head_r * 0.3), hb - up * (b.head_r * 2.4), b.head_r * 0.72, hair)
        if back is None:  # front view: hair falls on both sides of the face
            for sg in (1, -1):
                hs = j["head"] + side * (sg * b.head_r * 0.8)
                cv.capsule(hs, hs - up * (b.head_r * 2.0), b.head_r * 0.4, hair)
    leg("l", far)
    arm("l", far)
    cv.capsule(j["pelvis"], j["neck"], b.torso_r, top)
    if ch.bottom_kind == "dress":
        waist = j["pelvis"] + up * (b.torso * 0.3)
        hem = j["pelvis"] - up * (b.thigh * 0.85)
        wt, wb = b.torso_r * 1.05, b.torso_r * 2.2
        pts = np.stack([waist - side * wt, hem - side * wb, hem + side * wb, waist + side * wt], 1)
        cv.polygon(pts, bottom)
    else:
        cv.capsule(j["pelvis"] + up * 0.03, j["pelvis"] - up * 0.01, b.torso_r * 1.02, bottom)
    leg("r", 1.0)
    if ch.bottom_kind == "dress":
        cv.polygon(pts, bottom, 0.55)  # the skirt covers the near thigh too
    if ch.accessory == "scarf":
        cv.capsule(j["neck"] - side * 0.04, j["neck"] + side * 0.04, 0.03, acc)
    # Head, hair, headwear.
    head, hr = j["head"], b.head_r
    if ch.hair_style in ("short", "long", "ponytail"):
        cv.circle(head + up * (hr * 0.18) + (back if back is not None else 0 * side) * (hr * 0.12), hr * 1.04, hair)
    if ch.hair_style == "ponytail":
        root = head + up * (hr * 0.3) + (back if back is not None else up * 0.5) * (hr * 1.0)
        cv.capsule(root, root - up * (hr * 1.3) + (back if back is not None else 0 * side) * (hr * 0.4),
                   hr * 0.32, hair)
    cv.circle(head - up * (hr * 0.05), hr * 0.93, skin)
    if ch.accessory == "hat":
        cv.capsule(head + up * (hr * 0.55) - side * (hr * 1.6), head + up * (hr * 0.55) + side * (hr * 1.6),
                   hr * 0.16, acc)
        cv.capsule(head + up * (hr * 0.75), head + up * (hr * 1.2), hr * 0.7, acc)
    elif ch.accessory == "cap":
        cv.circle(head + up * (hr * 0.35), hr * 0.8, acc)
        fwd = side if facing < 0.5 else side * 0.0
        cv.capsule(head + up * (hr * 0.45), head + up * (hr * 0.45) + fwd * (hr * 1.3), hr * 0.17, acc)
    elif ch.accessory == "headband":
        cv.capsule(head + up * (hr * 0.4) - side * (hr * 0.95), head + up * (hr * 0.4) + side * (hr * 0.95),
                   hr * 0.2, acc)
    elif ch.accessory == "helmet":
        cv.capsule(head + up * (hr * 0.35) - side * (hr * 0.3), head + up * (hr * 0.35) + side * (hr * 0.3),
                   hr * 0.85, acc)
    elif ch.accessory == "chef hat":
        cv.capsule(head + up * (hr * 0.9), head + up * (hr * 2.0), hr * 0.75, acc)
    arm("r", 1.0)


# --------------------------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, n: int, t: np.ndarray, scale: float) -> np.ndarray:
    """A smooth random function of time in [-scale, scale] (sum of random sinusoids)."""
    out = np.zeros(len(t), F32)
    for _ in range(n):
        f, ph = rng.uniform(0.5, 3.0), rng.uniform(0, 2 * PI)
        out += np.sin(2 * PI * f * t + ph).astype(F32)
    return (out / n * scale * 1.6).astype(F32)


def _garble(img: np.ndarray, rng: np.random.Generator, idx: np.ndarray, num_frames: int) -> np.ndarray:
    """Corrupt frames the way broken generations look: scrambled blocks, colour shifts, smears.

    ``img`` holds frames ``idx`` of a ``num_frames`` clip; each frame's damage depends on its index
    only, so a subset of frames is damaged exactly as in the full clip."""
    _, h, w, _ = img.shape
    out = img.copy()
    bad = rng.random(num_frames) < 0.75
    bad[rng.integers(num_frames)] = True
    base = int(rng.integers(1 << 62))
    bs = max(4, h // 8)
    for i, frame in enumerate(idx):
        if not bad[frame]:
            continue
        rng = np.random.default_rng([base, int(frame)])
        kind = rng.integers(3)
        if kind == 0:  # shuffle blocks
            gh, gw = h // bs, w // bs
            blocks = out[i, : gh * bs, : gw * bs].reshape(gh, bs, gw, bs, 3).transpose(0, 2, 1, 3, 4)
            blocks = blocks.reshape(gh * gw, bs, bs, 3)[rng.permutation(gh * gw)]
            out[i, : gh * bs, : gw * bs] = blocks.reshape(gh, gw, bs, bs, 3).transpose(0, 2, 1, 3, 4).reshape(
                gh * bs, gw * bs, 3)
        elif kind == 1:  # colour channels swapped and a noisy band
            out[i] = out[i][..., rng.permutation(3)]
            r0 = rng.integers(0, h - h // 3)
            out[i, r0: r0 + h // 3] = rng.random((h // 3, w, 3)).astype(F32)
        else:  # horizontal tearing and smearing
            for r0 in range(0, h, bs):
                out[i, r0: r0 + bs] = np.roll(out[i, r0: r0 + bs], int(rng.integers(-w // 3, w // 3)), axis=1)
            out[i] = 0.5 * out[i] + 0.5 * out[i].mean(axis=(0, 1), keepdims=True)
    return out


# --------------------------------------------------------------------------------------------
# The clip
# --------------------------------------------------------------------------------------------


def _ground(j: dict[str, np.ndarray], mode: str, pose: Pose, b: Body) -> np.ndarray:
    """The vertical offset that puts the figure on the floor, per frame."""
    if mode == "feet":
        low = np.minimum(j["foot_r"][:, 1], j["foot_l"][:, 1]) - b.limb_r
    elif mode == "all":
        pts = np.stack([j[k][:, 1] for k in POINT_JOINTS], -1)
        low = pts.min(-1) - b.limb_r
        low = np.minimum(low, j["head"][:, 1] - b.head_r)
    elif mode == "none":
        return pose.lift
    elif mode == "hang":  # hands fixed on a bar above the head
        hands = (j["hand_r"][:, 1] + j["hand_l"][:, 1]) / 2
        return (F32(1.25 * b.torso / 0.30) - hands).astype(F32)
    else:
        raise ValueError(mode)
    return (-low + pose.lift).astype(F32)


def _character_colors(ch: Character, rng: np.random.Generator, variation: float) -> dict[str, np.ndarray]:
    def jitter(col: np.ndarray) -> np.ndarray:
        if variation <= 0:
            return col
        return np.clip(col * F32(rng.uniform(1 - variation, 1 + variation)) + rng.normal(0, variation / 3, 3), 0, 1
                       ).astype(F32)

    return {"skin": jitter(rgb(ch.skin) if ch.skin in SKIN_TONES else rgb(ch.skin)), "top": jitter(rgb(ch.top)),
            "bottom": jitter(rgb(ch.bottom)), "hair": jitter(rgb(ch.hair)),
            "accessory": jitter(rgb(ch.accessory_color))}


def frame_times(num_frames: int, frames: Sequence[int] | None) -> np.ndarray:
    idx = np.arange(num_frames) if frames is None else np.asarray(list(frames))
    return (idx / max(num_frames - 1, 1)).astype(F32)


def _subset_shape(shape: tuple, idx: np.ndarray, n_all: int) -> tuple:
    """A prop shape restricted to some frames (static boxes of rectangles stay as they are)."""
    if shape[1] == "rect":
        return shape
    return tuple(v[idx] if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n_all else v
                 for v in shape)


def render_clip(scene: Scene, seed: int, num_frames: int = 16, size: int = 64,
                frames: Sequence[int] | None = None) -> np.ndarray:
    """Render ``scene`` with ``seed``: uint8 (T, size, size, 3).

    ``frames`` renders only those frame indices of the ``num_frames``-frame clip, with the same
    pixels as the full clip's frames: motion and camera are computed for the whole clip (cheap)
    and only the drawing (the expensive part) is restricted to the requested frames.
    """
    # Independent streams per purpose, so e.g. adding noise never changes the motion of a seed.
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF, 0x5EED])
    r_motion, r_cam, r_bg, r_fail, r_col, r_noise = (np.random.default_rng(s) for s in ss.spawn(6))
    n = num_frames
    t = frame_times(num_frames, None)  # 0..1 over the clip
    idx = np.arange(num_frames) if frames is None else np.asarray(list(frames), dtype=int)
    ch = scene.character
    body = Body.of(ch)
    action = scene.action if scene.action is not None else "idle"
    spec = MOTIONS[action]
    # Per-clip variation of the motion: where in the cycle it starts, tempo and amplitude.
    phase0 = r_motion.uniform(0, 1)
    tempo = scene.speed * r_motion.uniform(0.85, 1.15)
    amp = float(r_motion.uniform(0.88, 1.08))
    c = (phase0 + t * spec.cycles * tempo * (num_frames / 16.0)).astype(F32)
    u = np.clip(t * tempo + r_motion.uniform(-0.06, 0.06), 0, 1).astype(F32)  # one-shot actions
    pose = spec.fn(c, u, amp)
    if ch.elderly:
        pose.lean = pose.lean + F32(0.15)
        pose.kn_r, pose.kn_l = pose.kn_r + F32(0.1), pose.kn_l + F32(0.1) * np.sign(pose.kn_l + 1e-3)

    failure = scene.failure
    if failure == "frozen":
        # The generator stalls: one half-formed pose held for the whole clip.
        idle = m_idle(c, u, 1.0)
        k = int(r_fail.integers(n))
        held = pose.blend(idle, 0.55)
        for f in POSE_FIELDS:
            setattr(held, f, np.full(n, getattr(held, f)[k], F32))
        pose = held
        c = np.full(n, c[k], F32)
        u = np.full(n, u[k], F32)
    elif failure == "wrong":
        # Incoherent motion: every joint wanders on its own, as in melted, broken generations.
        for f in ("sh_r", "sh_l", "el_r", "el_l", "hp_r", "hp_l", "kn_r", "kn_l", "lean", "head"):
            scale = 1.4 if f[:2] in ("sh", "el") else 0.8
            setattr(pose, f, getattr(pose, f) * F32(0.3) + _smooth_noise(r_fail, 3, t * 2.0, scale))
        pose.rot = pose.rot + _smooth_noise(r_fail, 2, t, 0.5)
    elif failure not in (None, "garbled"):
        raise ValueError(f"unknown failure mode {failure!r}; known: {FAILURE_MODES}")

    j = forward_kinematics(pose, body)
    dy = _ground(j, spec.ground, pose, body)
    travel = F32(spec.travel * scene.speed) * (u - 0.5) if spec.travel else np.zeros(n, F32)
    if action == "climb stairs":
        dy = dy + (travel - travel.min()) * F32(STAIR_RISE / STAIR_RUN)
    offset = np.stack([pose.x + travel, dy], -1).astype(F32)
    for k in POINT_JOINTS:
        j[k] = j[k] + offset
    props = spec.props(j, c, u, body) if spec.props is not None else []
    if failure == "wrong" and props:
        props = props[: max(1, len(props) // 2)]

    # Camera: frame the figure's extent over the clip, then apply offsets, zoom and shake.
    cam = scene.camera
    pts = np.stack([j[k] for k in POINT_JOINTS], 1)  # (T, J, 2)
    moving_x = pts[:, :, 0].mean(-1)
    # The extent is measured around the moving centre: a tracking camera frames the person,
    # not the whole path.
    rel = pts - np.stack([moving_x, np.zeros(n, F32)], -1)[:, None, :]
    lo, hi = rel.min(axis=(0, 1)), rel.max(axis=(0, 1))
    lo[1] = min(lo[1], 0.0)
    hi[1] = max(hi[1], j["head"][:, 1].max() + body.head_r)
    extent = float(max(hi[1] - lo[1], (hi[0] - lo[0]) * 0.85, 0.55 * ch.height))
    view = extent / 0.80 / cam.zoom  # the subject fills ~80 % of the frame height at zoom 1
    centre_y = float((lo[1] + hi[1]) / 2)
    track = cam.tracking if spec.travel else 1.0
    cx = moving_x.mean() + (moving_x - moving_x.mean()) * F32(track)
    cx = cx + F32((lo[0] + hi[0]) / 2 + cam.offset_x * view)
    cy = np.full(n, centre_y + cam.offset_y * view, F32)
    if cam.jitter > 0:
        shake = np.cumsum(r_cam.normal(0, cam.jitter, (num_frames, 2)), 0).astype(F32) * F32(view)
        shake -= shake.mean(0)
        cx, cy = cx + shake[:, 0], cy + shake[:, 1]
    zoom_t = (1 + F32(cam.zoom_drift) * (t - 0.5)).astype(F32)
    px = (F32(view / size) / zoom_t).astype(F32)

    # Drawing, for the requested frames only.
    if frames is not None:
        j = {k: (v[idx] if v.ndim >= 1 and v.shape[0] == n else v) for k, v in j.items()}
        props = [_subset_shape(sh, idx, n) for sh in props]
        cx, cy, px, t = cx[idx], cy[idx], px[idx], t[idx]
    cv = Canvas(len(idx), size, size, cx.astype(F32), cy.astype(F32), px, cam.mirror)
    env = ENVIRONMENT_BY_NAME[scene.environment]
    _draw_background(cv, env.name, r_bg, t)
    colors = _character_colors(ch, r_col, scene.color_variation)
    palette = lambda name: rgb(name)  # noqa: E731
    for shape in props:
        if shape[0] == "back":
            cv.draw(shape, palette)
    _draw_figure(cv, j, ch, body, pose.facing, colors)
    for shape in props:
        if shape[0] == "front":
            cv.draw(shape, palette)
    _apply_lighting(cv, scene.lighting or env.lighting, cx)

    img = cv.img
    if cam.color_jitter > 0:
        img = img * (1 + r_noise.normal(0, cam.color_jitter, 3)).astype(F32)
    if failure == "garbled":
        img = _garble(np.clip(img, 0, 1), r_fail, idx, num_frames)
    if cam.noise > 0:
        # Per-frame noise streams, so a frame's noise does not depend on which frames are drawn.
        base = int(r_noise.integers(1 << 62))
        img = img + np.stack([np.random.default_rng([base, int(i)]).normal(0, cam.noise, img.shape[1:])
                              for i in idx]).astype(F32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Scene samplers shared by the datasets, the generator and the world's CLIP
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealStyle:
    """How "real" footage varies: camera work, noise, context bias. The datasets' knobs."""

    context_bias: float = 0.5  # P(environment is one of the action's typical places)
    noise: tuple[float, float] = (0.005, 0.03)
    jitter: tuple[float, float] = (0.0, 0.003)
    zoom: tuple[float, float] = (0.93, 1.07)
    zoom_drift: tuple[float, float] = (-0.06, 0.06)
    offset: float = 0.03
    mirror_p: float = 0.5
    color_variation: float = 0.08
    speed: tuple[float, float] = (0.85, 1.2)
    lighting_p: float = 0.3  # P(lighting differs from the environment's own)


def random_character(rng: np.random.Generator, mutate_p: float = 0.35) -> Character:
    """A character look with, sometimes, one attribute changed: real people vary."""
    ch = CHARACTERS[int(rng.integers(len(CHARACTERS)))].look
    if rng.random() < mutate_p:
        which = int(rng.integers(3))
        colours = [c for c in COLORS if c not in ("blonde",)]
        if which == 0:
            ch = replace(ch, top=colours[int(rng.integers(len(colours)))])
        elif which == 1:
            ch = replace(ch, bottom=colours[int(rng.integers(len(colours)))])
        else:
            ch = replace(ch, skin=list(SKIN_TONES)[int(rng.integers(len(SKIN_TONES)))])
    return ch


def real_scene(action: str, rng: np.random.Generator, style: RealStyle = RealStyle()) -> Scene:
    """A scene as a camera in the real world would film it: any place (typical ones more often),
    anyone, hand-held camera, noise."""
    spec = ACTION_BY_NAME[action]
    if spec.typical_envs and rng.random() < style.context_bias:
        env = spec.typical_envs[int(rng.integers(len(spec.typical_envs)))]
    else:
        env = ENVIRONMENTS[int(rng.integers(len(ENVIRONMENTS)))].name
    lighting = None
    if rng.random() < style.lighting_p:
        lighting = list(LIGHTING)[int(rng.integers(len(LIGHTING)))]
    cam = CameraSpec(
        offset_x=float(rng.uniform(-style.offset, style.offset)),
        offset_y=float(rng.uniform(-style.offset, style.offset) * 0.6),
        zoom=float(rng.uniform(*style.zoom)),
        zoom_drift=float(rng.uniform(*style.zoom_drift)),
        jitter=float(rng.uniform(*style.jitter)),
        tracking=float(rng.uniform(0.4, 1.0)),
        mirror=bool(rng.random() < style.mirror_p),
        noise=float(rng.uniform(*style.noise)),
        color_jitter=0.05,
    )
    return Scene(action, env, random_character(rng), lighting, cam, float(rng.uniform(*style.speed)), None,
                 style.color_variation)


def stereotype_scene(action: str) -> Scene:
    """The generator's default rendering of an action: its stereotype place and person."""
    spec = ACTION_BY_NAME[action]
    return Scene(action, spec.stereotype_env, CHARACTER_BY_NAME[spec.stereotype_character].look)
