"""Small real snippets per language, with the (kind, symbol) units the chunker must find."""

from __future__ import annotations

SNIPPETS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    # language: (file name, source, expected (kind, symbol) of function/method/class chunks)
    "python": (
        "a.py",
        '''import os


@decorate
def top(x):
    return x


class Shape:
    """A shape."""

    sides = 0

    def area(self):
        return 0
''',
        [("function", "top"), ("class", "Shape"), ("method", "Shape.area")],
    ),
    "javascript": (
        "a.js",
        """import x from "y";
export function greet(name) {
  return "hi " + name;
}
class Greeter {
  constructor(n) { this.n = n; }
  hello() { return greet(this.n); }
}
""",
        [
            ("function", "greet"),
            ("class", "Greeter"),
            ("method", "Greeter.constructor"),
            ("method", "Greeter.hello"),
        ],
    ),
    "typescript": (
        "a.ts",
        """interface Named { name: string }
export class Box<T> {
  constructor(private value: T) {}
  get(): T { return this.value; }
}
function unbox<T>(b: Box<T>): T { return b.get(); }
""",
        [
            ("class", "Named"),
            ("class", "Box"),
            ("method", "Box.constructor"),
            ("method", "Box.get"),
            ("function", "unbox"),
        ],
    ),
    "tsx": (
        "a.tsx",
        """export function App(props: {n: number}) {
  return <div>{props.n}</div>;
}
""",
        [("function", "App")],
    ),
    "java": (
        "A.java",
        """package p;
public class Account {
    private int balance;
    public Account(int b) { balance = b; }
    public int deposit(int x) {
        balance += x;
        return balance;
    }
}
""",
        [("class", "Account"), ("method", "Account.Account"), ("method", "Account.deposit")],
    ),
    "go": (
        "a.go",
        """package main

type Point struct{ X, Y int }

func (p Point) Norm() int { return p.X*p.X + p.Y*p.Y }

func main() {
	println(Point{1, 2}.Norm())
}
""",
        [("class", "Point"), ("function", "Norm"), ("function", "main")],
    ),
    "rust": (
        "a.rs",
        """struct Counter { n: u32 }
impl Counter {
    fn new() -> Self { Counter { n: 0 } }
    fn tick(&mut self) { self.n += 1; }
}
fn main() { let mut c = Counter::new(); c.tick(); }
""",
        [
            ("class", "Counter"),
            ("class", "Counter"),
            ("method", "Counter.new"),
            ("method", "Counter.tick"),
            ("function", "main"),
        ],
    ),
    "c": (
        "a.c",
        """#include <stdio.h>
struct pair { int a; int b; };
static int add(int a, int b) {
    return a + b;
}
int main(void) { return add(1, 2); }
""",
        [("class", "pair"), ("function", "add"), ("function", "main")],
    ),
    "cpp": (
        "a.cpp",
        """#include <string>
namespace geo {
class Circle {
 public:
  double area() const { return 3.14 * r * r; }
  double r;
};
}
int twice(int x) { return 2 * x; }
""",
        [
            ("class", "geo"),
            ("class", "geo.Circle"),
            ("method", "geo.Circle.area"),
            ("function", "twice"),
        ],
    ),
    "c_sharp": (
        "a.cs",
        """using System;
namespace Shop {
    public class Cart {
        public int Count() { return 0; }
    }
}
""",
        [("class", "Shop"), ("class", "Shop.Cart"), ("method", "Shop.Cart.Count")],
    ),
    "ruby": (
        "a.rb",
        """module Billing
  class Invoice
    def total
      42
    end
  end
end
def helper; end
""",
        [
            ("class", "Billing"),
            ("class", "Billing.Invoice"),
            ("method", "Billing.Invoice.total"),
            ("function", "helper"),
        ],
    ),
    "php": (
        "a.php",
        """<?php
function slug($s) { return strtolower($s); }
class User {
    public function name() { return "x"; }
}
""",
        [("function", "slug"), ("class", "User"), ("method", "User.name")],
    ),
    "bash": (
        "a.sh",
        """#!/bin/sh
set -e
greet() {
  echo "hi $1"
}
greet world
""",
        [("function", "greet")],
    ),
    "kotlin": (
        "a.kt",
        """package p
class Stack {
    fun push(x: Int) { }
}
fun main() { Stack().push(1) }
""",
        [("class", "Stack"), ("method", "Stack.push"), ("function", "main")],
    ),
    "scala": (
        "a.scala",
        """object Main {
  def run(): Unit = println("x")
}
class Queue { def size: Int = 0 }
""",
        [("class", "Main"), ("method", "Main.run"), ("class", "Queue"), ("method", "Queue.size")],
    ),
    "lua": (
        "a.lua",
        """local M = {}
function M.add(a, b)
  return a + b
end
return M
""",
        [("function", "M.add")],
    ),
    "swift": (
        "a.swift",
        """class Dog {
    func bark() -> String { return "woof" }
}
func main() { print(Dog().bark()) }
""",
        [("class", "Dog"), ("method", "Dog.bark"), ("function", "main")],
    ),
}
