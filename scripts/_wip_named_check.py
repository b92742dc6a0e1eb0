import numpy as np, torch, time
from sklearn.metrics import f1_score
from attpc_classify.data import task_labels
from attpc_classify.models.gbt import GBTClassifier, NamedTracksGBT, fit_gbt, fit_named_tracks
from data_prep.imagefile import read_images
from data_prep.features import track_columns, feature_names
from data_prep.tracktruth import image_file_track_kinds
D = "/work/x12/v3"
SETS = ["randomized_test", "nominal_test", "knob_gain_x0.3", "knob_gain_x3", "knob_noise_400",
        "knob_one_point_per_pad", "knob_threshold_60", "knob_tilt_6.5deg", "standin"]
t0 = time.time()
tr = read_images(f"{D}/randomized6000.h5", features=True)
kinds = image_file_track_kinds(tr)
print(f"kinds in {time.time()-t0:.0f} s; tracks {np.sum(kinds >= 0)}")
x, y = tr.features.astype(np.float64), task_labels(tr.label, "multiclass")
n2 = len(feature_names("tracks_v2"))
P = dict(learning_rate=0.1, max_leaf_nodes=127, l2_regularization=1.0, max_iter=300)
tests = {n: read_images(f"{D}/{n}.h5", features=True) for n in SETS}
res = {"plain v2": [], "named v3": []}
for seed in range(3):
    rng = np.random.default_rng(seed); perm = rng.permutation(len(y)); va, trn = perm[:len(y)//5], perm[len(y)//5:]
    plain = GBTClassifier(n2, 3)
    fit_gbt(plain, x[trn, :n2], y[trn], x_val=x[va, :n2], y_val=y[va], params=P, seed=seed)
    named = NamedTracksGBT(x.shape[1], 3, track_columns())
    fit_named_tracks(named, x[trn], y[trn], kinds[trn], x_val=x[va], y_val=y[va], params=P, seed=seed)
    for name, m, cols in (("plain v2", plain, slice(0, n2)), ("named v3", named, slice(None))):
        row = []
        for n, s in tests.items():
            with torch.no_grad():
                p = m(torch.from_numpy(s.features[:, cols].astype(np.float64))).argmax(1).numpy()
            yt = task_labels(s.label, "multiclass")
            row.append((f1_score(yt == 0, p == 0), f1_score(yt, p, average="macro")))
        res[name].append(row)
for name, r in res.items():
    r = np.mean(r, axis=0)
    print(name, " ".join(f"{a:.3f}/{b:.3f}" for a, b in r), " mean8", np.round(r[:-1].mean(0), 3))
