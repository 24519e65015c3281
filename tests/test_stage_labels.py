"""stages/labels.py: the label-image helpers the region-cutting stages share (issue 25)."""

from __future__ import annotations

import numpy as np

from quickart_daemon.stages import labels


def _two_boxes() -> np.ndarray:
    lab = np.zeros((6, 8), np.int32)
    lab[1:4, 1:3] = 1  # 3 x 2
    lab[1:5, 4:7] = 2  # 4 x 3
    return lab


def test_nearest_labels_fills_every_unlabelled_pixel_from_the_nearest_label():
    lab = _two_boxes()
    filled, dist = labels.nearest_labels(lab)
    assert (filled > 0).all()
    assert filled[2, 0] == 1 and filled[2, 7] == 2 and filled[0, 1] == 1 and filled[5, 5] == 2
    assert (dist[lab > 0] == 0).all() and dist[2, 0] > 0
    done, none = labels.nearest_labels(filled)
    assert done is filled and not none.any()


def test_fill_from_nearest_copies_values_within_the_same_region_and_distance():
    fill = np.zeros((1, 6, 3), np.float32)
    fill[0, 0] = (1, 0, 0)
    fill[0, 5] = (0, 0, 1)
    known = np.zeros((1, 6), bool)
    known[0, [0, 5]] = True
    want = ~known
    region = np.array([[1, 1, 1, 2, 2, 2]])
    ok = labels.fill_from_nearest(fill, known, want, same=region)
    assert ok[0, 1:5].all()
    assert (fill[0, 1:3] == (1, 0, 0)).all() and (fill[0, 3:5] == (0, 0, 1)).all()
    fill2 = np.zeros((1, 6, 1), np.float32)
    fill2[0, 0] = 7
    near = labels.fill_from_nearest(fill2, known, want, max_dist=1.5)
    assert near[0].tolist() == [False, True, False, False, True, False] and fill2[0, 1, 0] == 7


def test_geometry_measures_each_label():
    lab = _two_boxes()
    g = labels.geometry(lab)
    assert g.n == 2 and g.area.tolist() == [48 - 18, 6, 12]
    assert np.allclose(g.centroid[1], (1.5, 2.0)) and np.allclose(g.centroid[2], (5.0, 2.5))
    assert g.bbox[1].tolist() == [1, 1, 2, 3] and g.bbox[2].tolist() == [4, 1, 6, 4]
    assert np.allclose(g.cov[1], [[0.25, 0], [0, 2 / 3]])
    # adjacency: the same counts as np.add.at over right and down neighbours, symmetric
    want = np.zeros((3, 3))
    for x0, x1 in ((lab[:, :-1], lab[:, 1:]), (lab[:-1], lab[1:])):
        d = x0 != x1
        np.add.at(want, (x0[d], x1[d]), 1.0)
    assert np.array_equal(g.adj, want + want.T) and g.adj[1, 2] == 0 and g.adj[0, 1] == 10
    along = np.zeros(lab.shape, bool)
    along[:, :2] = True
    assert labels.boundary_lengths(lab, 2, along)[0, 1] == 5  # its left side (3), the top and bottom of column 1


def test_confidence_image_is_opaque_grey():
    img = labels.confidence_image(np.array([[0.0, 0.5, 1.0, 2.0]], np.float32))
    assert img.dtype == np.uint8 and img.shape == (1, 4, 4)
    assert img[0, :, 0].tolist() == [0, 128, 255, 255] and (img[..., 3] == 255).all()
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
