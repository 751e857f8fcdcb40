import pytest

from terminal.core.channels import Channel, InputDevice
from terminal.core.levels import LEVELS_BEST_FIRST, Level


def test_canonical_codes_put_best_at_five():
    assert Level.VERY_SATISFIED == 5 and Level.VERY_SATISFIED.zh == "非常满意"
    assert Level.VERY_DISSATISFIED == 1 and Level.VERY_DISSATISFIED.zh == "非常不满意"
    assert [lv.zh for lv in LEVELS_BEST_FIRST] == ["非常满意", "满意", "基本满意", "不满意", "非常不满意"]


@pytest.mark.parametrize("level, gbt", [(5, 1), (4, 2), (3, 3), (2, 4), (1, 5)])
def test_gbt_39046_code_list_is_reversed(level, gbt):
    assert Level(level).to_gbt() == gbt
    assert Level.from_gbt(gbt) == Level(level)


def test_only_the_two_lowest_levels_are_bad():
    assert [lv.is_bad for lv in LEVELS_BEST_FIRST] == [False, False, False, True, True]


@pytest.mark.parametrize("bad", [0, 6, -1, "5", 4.0, True, None])
def test_parse_refuses_anything_but_an_integer_1_to_5(bad):
    with pytest.raises(ValueError):
        Level.parse(bad)
    with pytest.raises(ValueError):
        Level.from_gbt(bad)


def test_channels_follow_the_provincial_codes():
    assert [int(c) for c in Channel] == [1, 2, 3, 4, 5, 6, 7, 8]  # 1-7 the provinces'; 8 ours, mapped on export
    assert Channel.TELEPHONE.zh == "电话回访"
    assert Channel.HALL_TABLET.zh == "政务大厅平板电脑"
    assert InputDevice.TOUCHSCREEN.channel is Channel.HALL_TABLET
    assert InputDevice.BUTTON_BOX.channel is Channel.HALL_TERMINAL
