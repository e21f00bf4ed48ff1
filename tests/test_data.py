"""Text windows, the position split and the LSTM stream batcher."""

import pytest
import torch
from torch.utils.data import DataLoader

from toytorch.data import StreamBatcher, TextWindows, random_windows, split_by_position


def test_windows_by_hand():
    ids = torch.tensor([10, 11, 12, 13, 14, 15, 16])
    w = TextWindows(ids, 3)
    assert len(w) == 2
    assert [t.tolist() for t in w[0]] == [[10, 11, 12], [11, 12, 13]]
    assert [t.tolist() for t in w[1]] == [[13, 14, 15], [14, 15, 16]]
    assert [t.tolist() for t in w[-1]] == [[13, 14, 15], [14, 15, 16]]
    with pytest.raises(IndexError):
        w[2]


@pytest.mark.parametrize(
    "n, T, stride", [(100, 7, None), (100, 7, 1), (8, 7, 3), (7, 7, 1)]
)
def test_windows_count_and_targets(n, T, stride):
    ids = torch.arange(n)
    w = TextWindows(ids, T, stride)
    starts = range(0, n - T, stride or T)  # a window needs T inputs and one more target
    assert len(w) == len(starts)
    for i, s in enumerate(starts):
        x, y = w[i]
        assert x.tolist() == list(range(s, s + T))
        assert y.tolist() == list(range(s + 1, s + T + 1))


def test_windows_work_with_a_dataloader():
    ids = torch.arange(1000)
    loader = DataLoader(TextWindows(ids, 16), batch_size=4, shuffle=False)
    x, y = next(iter(loader))
    assert x.shape == y.shape == (4, 16)
    assert torch.equal(x[1], torch.arange(16, 32))
    assert torch.equal(y, x + 1)
    assert sum(len(b[0]) for b in loader) == len(TextWindows(ids, 16))


def test_split_keeps_first_part_for_training():
    ids = torch.arange(1000)
    train, val = split_by_position(ids, 0.1)
    assert len(train) == 900 and len(val) == 100
    assert torch.equal(torch.cat([train, val]), ids)
    assert train[-1] < val[0]
    assert len(split_by_position(ids, 0.0)[1]) == 0
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_position(ids, 1.0)


def test_random_windows_are_shifted_pairs_and_seeded():
    ids = torch.arange(500)
    x, y = random_windows(ids, 8, 5, torch.Generator().manual_seed(1))
    assert x.shape == (5, 8) and torch.equal(y, x + 1)
    assert torch.equal(torch.diff(x, dim=1), torch.ones(5, 7, dtype=torch.long))
    again, _ = random_windows(ids, 8, 5, torch.Generator().manual_seed(1))
    assert torch.equal(x, again)
    assert int(y.max()) < 500


def test_streams_continue_from_window_to_window():
    ids = torch.arange(1001)
    s = StreamBatcher(ids, context=10, batch_size=4)
    L = 1000 // 4  # each stream: 250 tokens, 25 windows
    assert len(s) == 25
    rows = [torch.cat([s.batch(k)[0][b] for k in range(len(s))]) for b in range(4)]
    for b, row in enumerate(rows):
        assert torch.equal(row, torch.arange(b * L, b * L + 250))
    covered = torch.cat(rows)
    assert torch.equal(covered, ids[: len(covered)])  # no gap between the streams
    x, y = s.batch(3)
    assert torch.equal(y, x + 1)
    assert torch.equal(s.batch(25)[0], s.batch(0)[0])  # the next pass starts over


def test_streams_skip_nothing_when_windows_do_not_divide_the_text():
    ids = torch.arange(1000)
    s = StreamBatcher(ids, context=7, batch_size=3)
    assert len(s) == 999 // 21
    rows = [torch.cat([s.batch(k)[0][b] for k in range(len(s))]) for b in range(3)]
    covered = torch.cat(rows)
    assert torch.equal(covered, ids[: len(covered)])
    assert len(ids) - len(covered) < 3 * 7 + 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="1-D LongTensor"):
        TextWindows(torch.zeros(3, 3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="context"):
        TextWindows(torch.arange(10), 0)
    with pytest.raises(ValueError, match="too few"):
        StreamBatcher(torch.arange(10), context=8, batch_size=4)
    with pytest.raises(ValueError, match="more than context"):
        random_windows(torch.arange(5), 5, 1, torch.Generator())
