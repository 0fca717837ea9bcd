"""The account view's inline SVG chart: geometry from dates and probabilities."""

from __future__ import annotations

from datetime import date

from serving.chart import BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH, probability_chart


def test_points_span_the_plot_and_the_axis_tops_at_a_round_ceiling():
    dates = [date(2025, 4, 1), date(2025, 5, 1), date(2025, 5, 8)]
    chart = probability_chart(dates, {"Churn": [0.1, None, 0.25], "Upsell": [0.0, 0.05, 0.3]},
                              {"Churn": "line-churn"})
    plot_h = HEIGHT - TOP - BOTTOM  # 146; the axis tops at 30 %
    churn, upsell = chart.series
    assert churn.css == "line-churn" and upsell.css == ""
    assert [(x, round(y, 3), v) for x, y, v in churn.points] == [
        (LEFT, round(TOP + plot_h * (1 - 0.1 / 0.3), 3), 0.1),
        (WIDTH - RIGHT, round(TOP + plot_h * (1 - 0.25 / 0.3), 3), 0.25)]  # no dot for None
    assert upsell.points[1][0] == LEFT + (WIDTH - LEFT - RIGHT) / 2
    assert upsell.points[2][1] == TOP and upsell.points[0][1] == chart.baseline == TOP + plot_h
    assert [label for _, label in chart.y_ticks] == ["0%", "15%", "30%"]
    assert chart.x_labels == [(LEFT, "2025-04-01"), (WIDTH - RIGHT, "2025-05-08")]
    assert churn.polyline == " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in churn.points)


def test_one_run_is_a_dot_in_the_middle_and_small_values_get_a_ten_percent_axis():
    chart = probability_chart([date(2025, 5, 8)], {"Churn": [0.02]}, {})
    [(x, y, v)] = chart.series[0].points
    assert x == LEFT + (WIDTH - LEFT - RIGHT) / 2 and v == 0.02
    assert [label for _, label in chart.y_ticks] == ["0%", "5%", "10%"]
    assert chart.x_labels == [(x, "2025-05-08")]


def test_the_ceiling_of_a_round_value_is_that_value():
    chart = probability_chart([date(2025, 5, 8)], {"Churn": [0.7]}, {})  # 0.7 * 10 > 7 in floats
    assert chart.y_ticks[-1][1] == "70%"
